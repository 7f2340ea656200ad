"""``concertops demo``: the whole story on the embedded default, in about a minute — a healthy service, an
incident from Part A and one from Part B caused for real, seen red by `check`, fixed by their runbooks,
verified, and seen green again."""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from concertops.cli import console
from concertops.model.errors import UsageError

if TYPE_CHECKING:  # the engine (SQLAlchemy and all) loads only when the demo runs
    from concertops.config import Profile
    from concertops.devstack.embedded import Embedded
    from concertops.engine.remediate import Tuning

# A-3 and B-2: both harms stay visible between two looks (a waiting queue, seats held past expiry), which
# is what a direct scrape can judge without Prometheus' history.
INCIDENTS = ("A-3", "B-2")
# What the on-call engineer adds: A-3's queue is short of slots as well as slow to fill them.
APPLY_ARGS = {"A-3": ("--raise-tokens", "20")}


@dataclass
class Told:
    incident: str
    detected_after: float | None = None
    fixed_in: float | None = None
    steps: str = ""
    result: str = "not run"


def demo(
    keep: bool = typer.Option(
        False, "--keep", help="Leave the environment running and print how to point concertops at it."
    ),
    directory: Path | None = typer.Option(
        None, "--dir", help="State directory for the environment (default: a new temporary one)."
    ),
    stop: bool = typer.Option(False, "--stop", help="Stop an environment left by --keep (give its --dir)."),
) -> None:
    """The incident story on the embedded default: SQLite, embedded Redis, Tansu, direct scrape.

    Starts the booking service with nothing installed, checks it healthy, causes A-3
    (queue activation delayed by polling) and B-2 (lost expiry events holding seats),
    shows `check` red with the evidence, applies both runbooks, verifies, and checks
    green again. Everything it started is stopped at the end unless --keep.

    Exit code: 0 the story ends green, 2 it does not, 3 the environment could not start.
    """
    from concertops.devstack import embedded

    out = console.out()
    if stop:
        if directory is None:
            raise UsageError("--stop needs the environment's --dir", "the --keep run printed it")
        stopped = embedded.stop(directory)
        out.print(f"stopped {', '.join(stopped) or 'nothing (nothing was running)'}")
        return
    started = time.monotonic()
    root = directory or Path(tempfile.mkdtemp(prefix="concertops-demo-"))
    out.rule("[bold]concertops demo[/] — the incident manual on the embedded default")
    _chapter("1/6", "Start the booking service with nothing installed")
    env = embedded.start(root, step=lambda text: out.print(f"  [green]✓[/] {text}"))
    stories = [Told(i) for i in INCIDENTS]
    healthy_end = False
    try:
        _chapter("2/6", "A healthy service: every runbook's signals")
        _check(env.profile, say_not_applicable=True)
        for number, story in zip(("3/6", "4/6"), stories, strict=True):
            _cause(number, env.profile, story)
        _chapter("5/6", "`concertops check`: the on-call view")
        _check(env.profile)
        _chapter("6/6", "Apply the runbooks, verify, check again")
        for story in stories:
            _apply(env.profile, story)
        healthy_end = _check(env.profile) == 0
        _summary(stories, healthy_end, time.monotonic() - started)
    finally:
        if keep:
            _kept(env)
        else:
            stopped = embedded.stop(root)
            if directory is None:
                shutil.rmtree(root, ignore_errors=True)
            out.print(f"[dim]stopped {', '.join(stopped)}; nothing left running[/]")
    raise typer.Exit(0 if healthy_end else 2)


def _chapter(number: str, title: str) -> None:
    console.out().print()
    console.out().rule(f"[bold]{number}[/]  {title}", align="left")


def _check(profile: Profile, say_not_applicable: bool = False) -> int:
    from concertops.cli import render
    from concertops.engine.check import run_check
    from concertops.runbooks.registry import all_runbooks

    report = run_check(profile, all_runbooks(), timeout_s=5.0)
    render.table(report, show_ok_findings=False)
    if say_not_applicable:
        skipped = [
            f"{r.id} {f.title} ({f.message.removeprefix('not applicable: ')})"
            for r in report.runbooks
            for f in r.findings
            if f.message.startswith("not applicable")
        ]
        if skipped:
            console.out().print("  [dim]not measured here, by design:[/] " + "; ".join(skipped))
            console.out().print("  [dim]B-3's kill-idle step says so too: it needs MySQL's processlist.[/]")
    return int(report.exit_code)


def _cause(number: str, profile: Profile, story: Told) -> None:
    from concertops.simulate.incidents import recipe, simulate

    chosen = recipe(story.incident)
    _chapter(number, f"Cause {chosen.id}: {chosen.title}")
    out = console.out()
    out.print(f"  [dim]{chosen.story}[/]")
    outcome = simulate(profile, chosen.id, True, 60.0, lambda text: out.print(f"  · {text}"))
    story.detected_after = outcome.seconds_to_detect
    if outcome.detected and outcome.result is not None:
        out.print(
            f"  [red]●[/] {chosen.id} detected after {outcome.seconds_to_detect:.1f} s: "
            f"{outcome.result.verdict}"
        )
    else:
        out.print(f"  [yellow]{chosen.id} was not detected within 60 s[/]")


def _apply(profile: Profile, story: Told) -> None:
    from concertops.cli import apply_view
    from concertops.engine.remediate import Options, remediate
    from concertops.runbooks.registry import get

    out = console.out()
    args = APPLY_ARGS.get(story.incident, ())
    command = " ".join(["concertops", story.incident.lower().replace("-", ""), "--apply", "--yes", *args])
    out.print(f"\n[bold]$ {command}[/]")
    started = time.monotonic()
    ui = apply_view.TerminalUi(quiet=False)
    try:
        result = remediate(
            profile,
            get(story.incident),
            Options(yes=True, reason="concertops demo", verify_timeout_s=60.0, tuning=_tuning(args)),
            ui,
        )
    finally:
        ui.stop()
    apply_view.summary(result, ui)
    story.fixed_in = time.monotonic() - started
    story.steps = ", ".join(r.step.id for r in result.steps)
    story.result = "verified OK" if result.exit_code == 0 else f"exit {result.exit_code}"


def _tuning(args: tuple[str, ...]) -> Tuning:
    """The demo's apply options as the runbook command would turn them into step tuning."""
    from concertops.engine.remediate import Tuning

    if args == ("--raise-tokens", "20"):
        return Tuning(
            overrides={"more-active-tokens": {"value": 20}}, enable=frozenset({"more-active-tokens"})
        )
    return Tuning()


def _summary(stories: list[Told], healthy: bool, seconds: float) -> None:
    table = console.table(
        "incident", "detected after", "fixed and verified in", "steps", "result", title="What happened"
    )
    for s in stories:
        table.add_row(
            s.incident,
            "—" if s.detected_after is None else f"{s.detected_after:.1f} s",
            "—" if s.fixed_in is None else f"{s.fixed_in:.1f} s",
            s.steps,
            s.result,
        )
    out = console.out()
    out.print()
    out.print(table)
    verdict = "[green]the service is healthy again[/]" if healthy else "[red]the service is NOT healthy[/]"
    out.print(f"demo finished in {seconds:.0f} s: {verdict}")


def _kept(env: Embedded) -> None:
    out = console.out()
    out.print("\nThe environment keeps running. Point concertops at it with:")
    for key, value in env.environment().items():
        # One unwrapped line each, quoted for the shell: meant to be pasted.
        out.print(f"  export {key}={shlex.quote(value)}", soft_wrap=True, highlight=False, markup=False)
    out.print("Then try: concertops check · concertops simulate incident A-2 · concertops a2 --dry-run")
    out.print(f"Stop it with: concertops demo --stop --dir {env.root}")
