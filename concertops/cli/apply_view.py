"""How an apply run looks in a terminal: the plan, the confirmation, each step, and before → after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from concertops.cli import console
from concertops.cli.render import COLOURS, left_out_line
from concertops.model.status import Status

if TYPE_CHECKING:
    from concertops.config import Profile
    from concertops.engine.remediate import ApplyResult, StepRun
    from concertops.engine.report import Report

_MARKS = {
    "ok": "[green]✓[/]",
    "skipped": "[yellow]-[/]",
    "failed": "[bold red]✗[/]",
    "handed over": "[cyan]→[/]",  # a deploy-only change, for a person or the hand-off hook
}


class TerminalUi:
    """Talks to the operator on stdout (table format) or stderr (json format, stdout stays parseable)."""

    def __init__(self, quiet: bool) -> None:
        self.console = console.err() if quiet else console.out()
        self.quiet = quiet
        self._status: Any = None

    def show_plan(self, result: ApplyResult) -> None:
        before = result.before
        colour = COLOURS[before.status]
        self.console.print(f"[bold]{before.id}[/] {before.title} — [{colour}]{before.status.name}[/]")
        self.console.print(f"  {before.verdict}")
        for finding in before.findings:
            if finding.status not in (Status.OK, Status.NOT_APPLICABLE):
                colour = COLOURS[finding.status]
                line = f"{finding.title}: {finding.message}"
                self.console.print(f"  [{colour}]{finding.status.label:<8}[/] {line}")
        if left_out := left_out_line(before.findings):
            self.console.print(f"  {left_out}", style="dim", markup=False)
        mode = "[bold]dry run[/]: nothing will change" if result.dry_run else "[bold]apply[/]"
        self.console.print(f"\nPlan ({mode}):")
        for number, run in enumerate(result.steps, 1):
            self.console.print(f"  {number}. [bold]{run.step.id}[/] {run.step.title}")
            if run.blocked:
                self.console.print(f"     [yellow]! {run.blocked}[/]")
            else:
                self.console.print(f"     {run.intent}")
            if run.step.expect:
                self.console.print(f"     [dim]expect: {run.step.expect}[/]")

    def confirm(self, profile: Profile) -> bool:
        from concertops.cli.confirm import confirmed

        return confirmed(profile, "Apply these steps?", to_stderr=self.quiet)

    def step_started(self, run: StepRun) -> None:
        if self.console.is_terminal:  # a spinner while the step runs; scripts get the result line only
            self._spin(f"{run.step.id}: {run.intent}")

    def _spin(self, text: str) -> None:
        if self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def step_finished(self, run: StepRun) -> None:
        assert run.outcome is not None
        self.stop()
        mark = _MARKS.get(run.outcome.result, "?")
        self.console.print(f"  {mark} [bold]{run.step.id}[/]: {run.outcome.detail}")
        for statement in run.statements:
            self.console.print(f"      [dim]{console.escape(statement)}[/]", soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(f"  [dim]{text}[/]")

    def progress(self, what: str, total: int | None) -> _Bar:
        """A bar with rows/s for a long step; on a non-terminal a line every 10 % instead."""
        self.stop()
        return _Bar(self.console, what, total)

    def verifying(self, report: Report, elapsed_s: float) -> None:
        result = report.runbooks[0]
        text = f"verifying: {result.id} {result.status.name} after {elapsed_s:.0f} s ({result.verdict})"
        if self.console.is_terminal:
            self._spin(text)
        elif result.status is Status.OK or elapsed_s == 0 or int(elapsed_s) % 10 < 2:
            self.note(text)  # a log line now and then, not one per poll

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def summary(result: ApplyResult, ui: TerminalUi) -> None:
    ui.stop()
    out = ui.console
    if result.message:
        out.print(result.message)
    if result.applied:
        versions = ", ".join(f"{i} v{v}" for i, v in result.applied.items())
        out.print(f"  [dim]instances: {versions}[/]")
    if result.after is None:
        if result.dry_run and result.steps:
            out.print("[bold]Dry run[/]: nothing was changed. Run again with --apply to do it.")
        return
    before, after = result.before, result.after
    table = console.table("signal", "before", "after", title=f"{before.id}: before → after", edge=False)
    after_by_signal = {f.signal: f for f in after.findings}
    for finding in before.findings:
        later = after_by_signal.get(finding.signal)
        quiet = (Status.OK, Status.NOT_APPLICABLE)
        if finding.status in quiet and (later is None or later.status is finding.status):
            continue  # healthy, or not on this service, before and after
        table.add_row(
            finding.title,
            f"[{COLOURS[finding.status]}]{finding.status.name}[/] {finding.message}",
            f"[{COLOURS[later.status]}]{later.status.name}[/] {later.message}" if later else "",
        )
    out.print(table)
    colour = COLOURS[after.status]
    out.print(f"Result: {before.status.name} → [{colour}]{after.status.name}[/]: {after.verdict}")
    if result.run_id:
        out.print(f"[dim]audit: concertops audit --run {result.run_id[:8]}[/]")


class _Bar:
    def __init__(self, on: Any, what: str, total: int | None) -> None:
        self.console, self.what, self.total, self.done, self.reported = on, what, total, 0, 0
        self._progress: Any = None
        if on.is_terminal:
            self._progress = console.progress(on, counted=True)
            self._task = self._progress.add_task(what, total=total, rate="")
            self._progress.start()
        import time

        self._started = time.monotonic()

    def advance(self, done: int) -> None:
        import time

        self.done += done
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = f"{self.done / elapsed:,.0f}/s"
        if self._progress is not None:
            self._progress.update(self._task, advance=done, rate=rate)
        elif self.total and self.done * 10 // self.total > self.reported:
            self.reported = self.done * 10 // self.total
            self.console.print(f"  [dim]{self.what}: {self.done}/{self.total} ({rate})[/]")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
