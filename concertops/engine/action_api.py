"""What every remediation action is given and gives back; it imports no action.

An action is prepared first (everything it will do, limits checked, before anything runs), then run once,
either for real or dry: a dry SQL step runs inside a transaction that is rolled back, so its counts are exact;
a dry settings step reports the change it would make. Running an action when there is nothing to do changes
nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from concertops.config import Profile
from concertops.contract import service_map
from concertops.contract import settings as specs
from concertops.contract.service_map import ServiceMap
from concertops.model.errors import UsageError
from concertops.model.findings import Step

if TYPE_CHECKING:
    import sqlalchemy as sa


@dataclass(frozen=True)
class Outcome:
    result: str  # ok | skipped | failed
    affected: int
    detail: str
    changed: bool = False
    settings_version: int | None = None  # a version every instance must apply before verifying


@dataclass
class Progress:
    """What a batched step has committed so far: after an interrupt or a failure, the audit and the
    terminal say exactly this (the rows of committed batches stay changed; the open one rolled back)."""

    noun: str  # what a row's change is, e.g. "holds expired"
    batches: int = 0
    rows: int = 0
    in_flight: bool = False  # a batch's transaction is open right now

    def committed(self, rows: int) -> None:
        self.batches, self.rows, self.in_flight = self.batches + 1, self.rows + rows, False

    def describe(self) -> str:
        done = f"{self.batches} batch{'es' if self.batches != 1 else ''} committed, {self.rows} {self.noun}"
        return done + (f"; the {_ordinal(self.batches + 1)} rolled back" if self.in_flight else "")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Tally(Protocol):
    """A progress bar: ``advance`` by items done; ``close`` when the step ends."""

    def advance(self, done: int) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def advance(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Context:
    profile: Profile
    engine: sa.Engine
    dry_run: bool
    operator: str
    reason: str
    note: Callable[[str], None] = field(default=lambda _line: None)  # a line of progress for the user
    # A progress bar for a long step: (what, total or None) → Tally.
    progress: Callable[[str, int | None], Tally] = field(default=lambda _what, _total: _Silent())
    # Database connections of this run that no step may touch (the lock's, held for the whole run).
    own_connections: set[int] = field(default_factory=set)
    # --dry-run --print: what a dry step would send besides SQL (a KILL, a settings write, a message).
    would: Callable[[str], None] = field(default=lambda _line: None)
    # Settings earlier steps of the plan will have written by the time a later step runs (prepare order).
    planned: dict[str, Any] = field(default_factory=dict)
    # Raises LockLost when the run no longer holds its apply lock: called before each step and each batch.
    ensure_locked: Callable[[], None] = field(default=lambda: None)
    # One audit row per committed batch: (step id, batch number, rows changed, keys it covered).
    batch_committed: Callable[[str, int, int, dict[str, Any]], None] = field(
        default=lambda _step, _n, _rows, _keys: None
    )
    # The service's map: names, zone, capabilities, deploy constants (default: the one the profile names).
    shape: ServiceMap = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.shape is None:
            self.shape = service_map.for_profile(self.profile)


class Action(Protocol):
    step: Step

    def prepare(self, ctx: Context) -> str:
        """What the step will do, concretely; raises UsageError when a limit forbids it."""

    def run(self, ctx: Context) -> Outcome: ...


def check_limits(step: Step, name: str, value: specs.Value) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        return
    low, high = getattr(step.config, "min", None), getattr(step.config, "max", None)
    if low is not None and value < low:
        raise UsageError(f"{step.id}: {name}={value} is below this step's limit {low}", f"use {low} or more")
    if high is not None and value > high:
        raise UsageError(
            f"{step.id}: {name}={value} is above this step's limit {high}", f"use {high} or less"
        )
