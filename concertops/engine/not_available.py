"""A step the service cannot take: planned with the map's own reason, never run."""

from __future__ import annotations

from dataclasses import dataclass

from concertops.engine.action_api import Context, Outcome
from concertops.model.findings import Step


@dataclass
class NotOnThisService:
    """A step the service cannot take (it lacks what the step acts through): planned, never run."""

    step: Step
    why: str
    blocked: str = ""

    def prepare(self, ctx: Context) -> str:
        self.blocked = f"not available on {ctx.shape.name}: {self.why}"
        return self.blocked

    def run(self, ctx: Context) -> Outcome:
        return Outcome("skipped", 0, self.blocked)
