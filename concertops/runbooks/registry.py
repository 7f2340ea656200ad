"""The seven runbooks: each page, its module, and the whole evaluate → verdict → plan chain (pure)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from concertops.model.findings import Finding, Observation, Step
from concertops.model.page import Page
from concertops.model.status import Status
from concertops.runbooks import base
from concertops.runbooks.pages import RUNBOOK_IDS, load
from concertops.runbooks.verdicts import Seen


@dataclass(frozen=True)
class Judgement:
    status: Status
    verdict: str
    findings: tuple[Finding, ...]
    plan: tuple[Step, ...]


@dataclass(frozen=True)
class Runbook:
    page: Page
    module: ModuleType

    @property
    def id(self) -> str:
        return self.page.id

    def judge(
        self, observations: Mapping[str, Observation], enable: frozenset[str] = frozenset()
    ) -> Judgement:
        findings = base.evaluate(self.page, observations)
        status = base.status_of(self.page, findings)
        # A runbook that could not be judged says what it could not see, not what the rest suggests.
        special = None if status is Status.UNKNOWN else self.module.verdict(Seen(findings))
        return Judgement(
            status=status,
            verdict=special or base.verdict(self.page, findings),
            findings=findings,
            plan=base.plan(self.page, findings, enable),
        )

    def with_window(self, window: str) -> Runbook:
        """The same runbook with every rate and quantile window set to ``window``."""
        signals = tuple(s.with_window(window) for s in self.page.signals)
        return Runbook(dataclasses.replace(self.page, signals=signals), self.module)


def get(runbook_id: str) -> Runbook:
    page = load(runbook_id)
    module = importlib.import_module(f"concertops.runbooks.{page.module}")
    return Runbook(page, module)


def all_runbooks() -> list[Runbook]:
    return [get(i) for i in RUNBOOK_IDS]
