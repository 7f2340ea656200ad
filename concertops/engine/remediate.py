"""``concertops <id> --apply``: plan → confirm → lock → steps (audited) → every instance applied → verify.

The order is the safety: nothing runs before every step has been prepared (limits checked, the concrete
change known) and confirmed; one run per runbook at a time; an audit row per step, finished even when the
step fails or is interrupted; the verdict comes from probing again, not from the steps' own word.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from concertops.config import Profile
from concertops.engine.action_api import Action, Context, Outcome, Progress, Tally
from concertops.engine.audit import AuditLog
from concertops.engine.check import run_check
from concertops.engine.dispatch import action_for
from concertops.engine.handoff import HANDED_OVER
from concertops.engine.locking import LockLost, RunLock
from concertops.engine.report import Report, RunbookResult
from concertops.engine.runs import holder_label
from concertops.model.errors import ConcertopsError, UsageError
from concertops.model.findings import Step
from concertops.model.page import Page
from concertops.model.params import ParamError, override
from concertops.model.status import Status
from concertops.redact import error_line, redact_text
from concertops.runbooks import catalogue
from concertops.runbooks.registry import Runbook
from concertops.sources.database import open_engine
from concertops.sources.instances import wait_applied

APPLIED_TIMEOUT_S = 30.0
MIN_PHASE_S = 0.5  # what a phase of the probe gets at the least, once --timeout is spent


class ConfirmationRefused(ConcertopsError):
    """The operator did not confirm; nothing was changed."""


class ApplyInterrupted(ConcertopsError):
    """Ctrl-C during a step: the message says which steps completed."""


@dataclass(frozen=True)
class Tuning:
    """The operator's choices: per-step knob overrides (step id → knob → value), and optional steps to
    include. Each override is checked against the step's model as the page's values are."""

    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    enable: frozenset[str] = frozenset()

    def tune(self, step: Step) -> Step:
        changes = self.overrides.get(step.id)
        if not changes:
            return step
        return dataclasses.replace(step, config=self._tuned(step.id, step.config, changes))

    def validate(self, page: Page) -> None:
        """Every override of every step of the page, checked before anything is probed or planned: a bad
        option is an error even when the plan turns out empty."""
        for spec in page.remediation:
            changes = self.overrides.get(spec.id)
            if changes:
                self._tuned(spec.id, spec.config, changes)

    @staticmethod
    def _tuned(step_id: str, config: Any, changes: dict[str, Any]) -> Any:
        try:
            return override(config, changes)
        except ParamError as exc:
            raise UsageError(
                f"{step_id}: {exc}", "see the command's --help for each option's range"
            ) from None


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    yes: bool = False
    reason: str = ""
    timeout_s: float = 5.0
    verify_timeout_s: float = 90.0
    verify_window: str = "30s"
    tuning: Tuning = Tuning()
    show_statements: bool = False  # --print: record every statement each step sends


@dataclass
class StepRun:
    step: Step
    intent: str  # what prepare() said it will do
    outcome: Outcome | None = None
    blocked: str = ""  # prepared to change nothing although its signal fires: why, and what would help
    statements: list[str] = field(default_factory=list)  # with --print: what the step sent, exactly


@dataclass
class ApplyResult:
    runbook: str
    dry_run: bool
    before: RunbookResult
    steps: list[StepRun]
    after: RunbookResult | None = None
    applied: dict[str, int] = field(default_factory=dict)  # instance → settings version, when checked
    not_applied: bool = False
    run_id: str = ""
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.not_applied or any(
            r.outcome is not None and r.outcome.result == "failed" for r in self.steps
        )

    @property
    def exit_code(self) -> int:
        if self.before.status is Status.UNKNOWN:  # refused: never "nothing to do" while blind
            return int(Status.UNKNOWN)
        if self.failed:
            return int(Status.CRITICAL)
        if not self.before.plan:  # nothing to do: the diagnosis decides (UNKNOWN → 3)
            return int(self.before.status)
        if self.dry_run:
            return int(Status.OK)
        return int(self.after.status) if self.after is not None else int(Status.UNKNOWN)

    def as_json(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "message": self.message,
            "before": self.before.as_json(),
            "steps": [
                {
                    "id": r.step.id,
                    "intent": r.intent,
                    "result": r.outcome.result if r.outcome else "not run",
                    "affected": r.outcome.affected if r.outcome else None,
                    "detail": r.outcome.detail if r.outcome else "",
                    "blocked": r.blocked,
                    "statements": r.statements,
                }
                for r in self.steps
            ],
            "applied": self.applied,
            "after": self.after.as_json() if self.after else None,
        }


class Ui(Protocol):
    def show_plan(self, result: ApplyResult) -> None: ...
    def confirm(self, profile: Profile) -> bool: ...
    def step_started(self, run: StepRun) -> None: ...
    def step_finished(self, run: StepRun) -> None: ...
    def note(self, text: str) -> None: ...
    def progress(self, what: str, total: int | None) -> Tally: ...
    def verifying(self, report: Report, elapsed_s: float) -> None: ...


def remediate(profile: Profile, runbook: Runbook, options: Options, ui: Ui) -> ApplyResult:
    from concertops.contract import service_map
    from concertops.engine import state_store

    options.tuning.validate(runbook.page)
    # --timeout bounds everything before the confirmation: the map's check, the probe, the store's look-up.
    deadline = time.monotonic() + options.timeout_s

    def left() -> float:
        return max(MIN_PHASE_S, deadline - time.monotonic())

    shape = service_map.for_profile(profile)
    _map_holds(shape, profile, runbook, left())
    enable = options.tuning.enable
    before = run_check(profile, [runbook], left(), enable=enable).runbooks[0]
    result = ApplyResult(runbook.id, options.dry_run, before, [])
    if before.status is Status.UNKNOWN:
        result.message = f"refused, nothing is applied: {before.verdict} (run `concertops doctor`)"
        return result
    if not before.plan:
        result.message = f"nothing to do: {before.verdict}"
        return result

    # The lock holds one connection for the run, a step one or two, the audit one more.
    engine = open_engine(profile.database_url, left(), connections=4)
    try:
        # concertops's own store (audit, lock holders): found before anything is prepared or changed.
        state = state_store.open_state(profile, left(), service=engine)
    except BaseException:
        engine.dispose()
        raise
    try:
        audit = AuditLog(state, runbook.id, profile.name, options.dry_run, reason=_reason(options, runbook))
        result.run_id = audit.run_id
        ctx = Context(
            profile,
            engine,
            options.dry_run,
            audit.operator,
            _reason(options, runbook),
            ui.note,
            ui.progress,
            shape=shape,
        )
        steps = [options.tuning.tune(s) for s in before.plan]
        actions: list[Action] = [action_for(s, shape) for s in steps]
        # Prepare everything before anything runs: a limit that forbids step 3 must stop step 1 too.
        try:
            result.steps = [
                StepRun(a.step, a.prepare(ctx), blocked=getattr(a, "blocked", "")) for a in actions
            ]
        except ConcertopsError as refused:
            audit.record("plan", "prepare every step", {}, "refused", 0, refused.one_line())
            raise
        ui.show_plan(result)
        if not options.dry_run and not options.yes and not ui.confirm(profile):
            audit.record("confirm", "confirmation", {}, "refused", 0, "the operator did not confirm")
            raise ConfirmationRefused("not confirmed: nothing was changed")
        try:
            return _locked_run(result, actions, ctx, audit, profile, runbook, options, ui)
        except KeyboardInterrupt:
            # Between two steps, or while the lock was being taken or given back: the steps that ran are
            # committed; say which (a Ctrl-C inside a step or the verification is reported where it hit).
            audit.record("apply", "Ctrl-C", {}, "interrupted", None, "Ctrl-C between steps")
            done = [r.step.id for r in result.steps if r.outcome is not None and r.outcome.result == "ok"]
            raise ApplyInterrupted(
                f"interrupted; steps completed: {', '.join(done) or 'none'}",
                f"see concertops audit --run {audit.run_id[:8]}",
            ) from None
    finally:
        engine.dispose()
        if state is not engine:
            state.dispose()


def _map_holds(shape: Any, profile: Profile, runbook: Runbook, timeout_s: float) -> None:
    """A map that names a table or column the live service lacks, or a queue key of another type than the
    steps write, stops the run before anything is probed: its steps would fail half-way, after the
    hand-offs before them ran. A missing consumer group does not stop it: groups are only read (their
    lag, in the report), and one that vanished may be the incident itself."""
    import sqlalchemy as sa

    from concertops.model.errors import ConfigError
    from concertops.sources.map_check import database_gaps, redis_gaps

    missing: list[str] = []
    if profile.database_url:
        # The database not answering: the check that follows says so, and refuses.
        with contextlib.suppress(sa.exc.OperationalError):
            missing += database_gaps(profile.database_url, shape, timeout_s)[0]
    writes_queue = any(
        isinstance(s.config, catalogue.ActivateWaitingParams) for s in runbook.page.remediation
    )
    if writes_queue and shape.queue.store == "redis" and profile.redis_url:
        with contextlib.suppress(Exception):  # Redis not answering: the check below says so, and refuses
            missing += redis_gaps(profile.redis_url, shape, timeout_s)[0]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"service map {shape.source}: {missing[0]}{more}: nothing was applied",
            "fix the map (concertops doctor lists every gap)",
        )


def _locked_run(
    result: ApplyResult,
    actions: list[Action],
    ctx: Context,
    audit: AuditLog,
    profile: Profile,
    runbook: Runbook,
    options: Options,
    ui: Ui,
) -> ApplyResult:
    """Take the lock, run the steps, wait until the instances apply them, verify."""
    before = result.before
    try:
        shared = catalogue.shared_locks(s.config for s in runbook.page.remediation)
        holder = holder_label(audit.operator, audit.run_id)
        lock = RunLock(ctx.engine, runbook.id, holder, shared, state=audit.engine).__enter__()
    except ConcertopsError as refused:
        audit.record("lock", "take the apply lock", {}, "refused", 0, str(refused))
        raise
    if lock.connection_id is not None:
        ctx.own_connections.add(int(lock.connection_id))
    ctx.ensure_locked = lock.ensure_held
    try:
        for dead in audit.close_dead_runs():
            ui.note(
                f"an earlier run {dead['run_id'][:8]} ({dead['operator']} on {dead['host']}) died during "
                f"{dead['step']}: marked interrupted (process gone); it had committed {dead['batches']} "
                f"batch(es), {dead['rows']} rows"
            )
        _run_steps(result, actions, ctx, audit, ui, options.show_statements)
    except LockLost as lost:
        audit.record("lock", "hold the apply lock", {}, "lock lost", None, lost.one_line())
        raise
    finally:
        lock.__exit__(None, None, None)
    if options.dry_run or result.failed:
        return result
    try:
        versions = [
            r.outcome.settings_version for r in result.steps if r.outcome and r.outcome.settings_version
        ]
        if versions:
            _wait_applied(result, profile, max(versions), ui)
        if not result.failed:
            # Nothing changed and what is left waits on a person (handed over): no effect can show within
            # the wait, so one probe tells where it stands. With every step already in force, the wait
            # stays: the recovery of an earlier fix may still be under way.
            outcomes = [r.outcome for r in result.steps if r.outcome is not None]
            changed = any(o.changed for o in outcomes)
            waits_on_person = any(o.result == HANDED_OVER for o in outcomes)
            wait = changed or not waits_on_person
            if not wait:
                ui.note("nothing was changed and the rest is handed over: verified once, without waiting")
            result.after = _verify(profile, runbook, options, ui, wait=wait)
    except KeyboardInterrupt:
        audit.record("verify", "probe again", {}, "interrupted", None, "Ctrl-C before the verdict")
        ran = ", ".join(r.step.id for r in result.steps)
        raise ApplyInterrupted(
            f"interrupted while verifying; every step had run ({ran})",
            f"see where it stands: concertops check {runbook.id}",
        ) from None
    if result.after is not None:
        audit.record(
            "verify",
            f"probe again over {options.verify_window}",
            {"window": options.verify_window},
            "ok" if result.after.status is Status.OK else "failed",
            None,
            f"{before.status.name} → {result.after.status.name}: {result.after.verdict}",
        )
    return result


@contextlib.contextmanager
def _recording(engine: Any, into: list[str] | None) -> Iterator[None]:
    """``--print``: every statement sent on ``engine`` meanwhile, with its parameters, passwords masked
    (as pt-archiver --dry-run and pt-kill --print show theirs)."""
    if into is None:
        yield
        return
    import sqlalchemy as sa

    def sent(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        text = " ".join(statement.split())
        into.append(redact_text(f"{text}  -- {parameters!r}" if parameters else text)[:2000])

    sa.event.listen(engine, "before_cursor_execute", sent)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", sent)


def _run_steps(
    result: ApplyResult,
    actions: list[Action],
    ctx: Context,
    audit: AuditLog,
    ui: Ui,
    show_statements: bool = False,
) -> None:
    def batch_row(step: str, number: int, rows: int, keys: dict[str, Any]) -> None:
        audit.record(step, f"batch {number}", keys, "ok", rows, f"batch {number} committed: {rows} rows")

    ctx.batch_committed = batch_row
    for run, action in zip(result.steps, actions, strict=True):
        ctx.ensure_locked()  # a lock lost before this step: it does not start
        ui.step_started(run)
        row = audit.start(run.step.id, run.step.action, {**run.step.params, "limits": run.step.limits})
        progress: Progress | None = getattr(action, "progress", None)
        ctx.would = run.statements.append if show_statements else (lambda _line: None)
        try:
            with _recording(ctx.engine, run.statements if show_statements else None):
                run.outcome = action.run(ctx)
        except LockLost as lost:
            what = progress.describe() if progress else "nothing committed"
            _finish(audit, row, "lock lost", progress.rows if progress else None, f"{lost} ({what})")
            run.outcome = Outcome("failed", progress.rows if progress else 0, f"lock lost ({what})")
            raise
        except KeyboardInterrupt:
            what = progress.describe() if progress else "its transaction was rolled back"
            _finish(audit, row, "interrupted", progress.rows if progress else None, f"interrupted: {what}")
            done = [r.step.id for r in result.steps if r.outcome is not None and r.outcome.result == "ok"]
            before = ", ".join(done) or "none"
            raise ApplyInterrupted(
                f"interrupted during {run.step.id} ({what}); completed before it: {before}",
                f"see concertops audit --run {audit.run_id[:8]}; a rerun finishes the rest",
            ) from None
        except Exception as exc:
            committed = f" after {progress.describe()}" if progress and progress.batches else ""
            run.outcome = Outcome("failed", progress.rows if progress else 0, error_line(exc) + committed)
        _finish(audit, row, run.outcome.result, run.outcome.affected, run.outcome.detail)
        ui.step_finished(run)
        if run.outcome.result == "failed":
            return  # later steps assume this one worked


def _finish(audit: AuditLog, row: int, result: str, affected: int | None, detail: str) -> None:
    try:
        audit.finish(row, result, affected, detail)
    except Exception as exc:  # the database went away mid-run: say so, the step's own result still stands
        import sys

        sys.stderr.write(f"concertops: warning: audit row {row} not finished ({error_line(exc)})\n")


def _wait_applied(result: ApplyResult, profile: Profile, version: int, ui: Ui) -> None:
    ui.note(f"waiting for every live instance to apply settings version {version}")
    applied, seen = wait_applied(profile, version, APPLIED_TIMEOUT_S)
    result.applied = seen
    if not seen:
        ui.note("no instance metrics configured (metrics_urls / prometheus_url): not checked on instances")
        return
    if not applied:
        result.not_applied = True
        behind = ", ".join(f"{i} at {v}" for i, v in seen.items() if v < version)
        result.message = f"settings version {version} not applied within {APPLIED_TIMEOUT_S:g} s: {behind}"


def _verify(profile: Profile, runbook: Runbook, options: Options, ui: Ui, wait: bool = True) -> RunbookResult:
    """Probe again until healthy or the verify timeout (once, without ``wait``): windows shortened, so the
    minutes of the incident still inside a 5-minute rate do not hide a recovery."""
    started = time.monotonic()
    while True:
        report = run_check(profile, [runbook], options.timeout_s, window=options.verify_window)
        elapsed = time.monotonic() - started
        ui.verifying(report, elapsed)
        if not wait or report.runbooks[0].status is Status.OK or elapsed >= options.verify_timeout_s:
            return report.runbooks[0]
        time.sleep(2)


def _reason(options: Options, runbook: Runbook) -> str:
    return options.reason or f"concertops {runbook.id.replace('-', '').lower()} --apply"
