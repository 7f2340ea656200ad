"""The seven runbook commands ``a1`` … ``b4``: without options the diagnosis and the plan; with ``--dry-run``
every step run in a mode that changes nothing; with ``--apply`` the fix, then verification.

Each command's own options are the knobs and hard limits of its steps, with the runbook page's values as
defaults, so ``concertops a1 --help`` says what can be tuned."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from concertops.cli.check import FORMAT_OPTION, OUTPUT_OPTION, TIMEOUT_OPTION, Format, run_report
from concertops.cli.state import OPTIONS, remaining
from concertops.model.errors import ConcertopsError, UsageError
from concertops.model.page import Page, StepSpec
from concertops.model.params import Knob, bounds_text, knobs, value_types
from concertops.runbooks.catalogue import SetSettingParams

APPLY = typer.Option(False, "--apply", help="Remediate: confirm, lock, run the steps (audited), verify.")
DRY_RUN = typer.Option(
    False, "--dry-run", help="Run every step in a mode that changes nothing; exact counts."
)
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (automation).")
PRINT = typer.Option(
    False,
    "--print",
    help="With --dry-run: show the exact statements each step sends (all rolled back), as pt-archiver "
    "--dry-run does.",
)
REASON = typer.Option("", "--reason", help="Why, for the settings history and the audit (e.g. INC-1234).")
VERIFY_TIMEOUT = typer.Option(
    90.0, "--verify-timeout", min=0, max=3600, help="Seconds to wait for the signals to recover."
)
VERIFY_WINDOW = typer.Option(
    "30s", "--verify-window", help="Rate window when verifying (the incident's minutes must not count)."
)

Tuned = tuple[dict[str, dict[str, Any]], frozenset[str]]  # step id → knob → value; optional steps


# Every runbook command takes these; its own options (the knobs of its steps) come first.
COMMON: tuple[tuple[str, Any, Any], ...] = (
    ("apply", bool, APPLY),
    ("dry_run", bool, DRY_RUN),
    ("yes", bool, YES),
    ("show_statements", bool, PRINT),
    ("reason", str, REASON),
    ("fmt", Format, FORMAT_OPTION),
    ("output", Path | None, OUTPUT_OPTION),
    ("timeout", float, TIMEOUT_OPTION),
    ("verify_timeout", float, VERIFY_TIMEOUT),
    ("verify_window", str, VERIFY_WINDOW),
)


def command(page: Page) -> Callable[..., None]:
    """The typer command of one runbook: an option for each knob its steps' models name, then the
    common ones. An option's default is the page's value (shown in --help); not given, the page decides."""
    knobs = tuple(page_knobs(page))

    def run(**given: Any) -> None:
        common = {name: given.pop(name) for name, _kind, _option in COMMON}
        overrides: dict[str, dict[str, Any]] = {}
        enable: set[str] = set()
        for knob in knobs:
            value = given.pop(knob.name)
            if value is not None:
                overrides.setdefault(knob.step.id, {})[knob.field] = value
                if knob.step.optional:
                    enable.add(knob.step.id)  # giving an optional step's value asks for that step
        _run(page.id, tuned=(overrides, frozenset(enable)), **common)

    params = [knob.parameter() for knob in knobs] + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, kind, option in COMMON
    ]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {param.name: param.annotation for param in params}
    return run


@dataclass(frozen=True)
class KnobOption:
    """One runbook command option: a knob of one step's model."""

    step: StepSpec
    field: str
    knob: Knob
    kind: Any
    option: str

    @property
    def name(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    def help(self) -> str:
        config = self.step.config
        value = getattr(config, self.field)
        if isinstance(config, SetSettingParams):
            bounds = bounds_text(config.min, config.max)
            what = f"{config.setting} for this step: {self.step.title.lower()}"
            if self.step.optional:
                return f"{what}. An optional step: runs only when given" + (
                    f" (limit {bounds})." if bounds else "."
                )
            return f"{what} (page: {value}" + (f"; limit {bounds})." if bounds else ").")
        # The range, from the model, is shown by click itself.
        default = "decided at run time" if value is None else f"page: {_shown(value)}"
        return f"{self.knob.help} ({default})."

    def parameter(self) -> inspect.Parameter:
        base = next(k for k in value_types(self.kind) if k is not type(None))
        extra: dict[str, Any] = {}
        if base is datetime:
            extra["formats"] = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
        if base in (int, float):
            extra.update(min=self.knob.min, max=self.knob.max)
        option = typer.Option(None, self.option, help=self.help(), show_default=False, **extra)
        return inspect.Parameter(
            self.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=base | None
        )


def page_knobs(page: Page) -> Iterator[KnobOption]:
    """Every option the page's steps offer, in step order."""
    common = {name for name, _kind, _option in COMMON}
    for step in page.remediation:
        spec = knobs(type(step.config))
        for field, option in step.options.items():
            knob, kind = spec[field]
            found = KnobOption(step, field, knob, kind, option)
            if found.name in common:
                raise UsageError(f"{page.path}: step {step.id}: option {option} is a common option")
            yield found


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run(
    runbook_id: str,
    *,
    fmt: Format,
    output: Path | None,
    timeout: float,
    apply: bool,
    dry_run: bool,
    yes: bool,
    show_statements: bool,
    reason: str,
    verify_timeout: float,
    verify_window: str,
    tuned: Tuned = ({}, frozenset()),
) -> None:
    if show_statements and not dry_run:
        raise UsageError("--print shows what a dry run sends", "add --dry-run")
    if not (apply or dry_run):
        # One runbook: every signal is worth a line, healthy ones included.
        run_report([runbook_id], fmt, output, timeout, show_all=True)
        return
    if apply and dry_run:
        raise UsageError("--apply and --dry-run exclude each other", "use --dry-run first, then --apply")
    if fmt not in (Format.table, Format.json) or output is not None:
        raise UsageError("--apply and --dry-run report as table or json", "drop --output, use --format json")
    from concertops.cli import apply_view
    from concertops.engine.interrupts import terminate_like_ctrl_c
    from concertops.engine.remediate import Options, Tuning, remediate
    from concertops.model.signals import WINDOW_PATTERN
    from concertops.runbooks.registry import get

    if not WINDOW_PATTERN.match(verify_window):
        raise UsageError(f"--verify-window {verify_window!r} is not a duration", "e.g. 30s, 2m")
    overrides, enable = tuned
    options = Options(
        dry_run=dry_run,
        yes=yes,
        reason=reason,
        timeout_s=remaining(timeout),  # what start-up left of --timeout
        verify_timeout_s=verify_timeout,
        verify_window=verify_window,
        tuning=Tuning(overrides, enable),
        show_statements=show_statements,
    )
    terminate_like_ctrl_c()  # a SIGTERM mid-run is audited and reported as an interruption
    ui = apply_view.TerminalUi(quiet=fmt is Format.json)
    try:
        result = remediate(OPTIONS.load_profile(), get(runbook_id), options, ui)
    except ConcertopsError as refused:
        if fmt is Format.json:  # a pipeline reading the JSON gets a document saying why, as for any refusal
            _refusal_json(runbook_id, dry_run, refused)
        raise
    finally:
        ui.stop()
    apply_view.summary(result, ui)
    if fmt is Format.json:
        import json

        from concertops.cli import console

        console.out().file.write(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    raise typer.Exit(result.exit_code)


def _refusal_json(runbook_id: str, dry_run: bool, refused: ConcertopsError) -> None:
    """The apply's JSON when it stopped before a plan (a map the live service contradicts, a lock held):
    the same keys, no steps."""
    import json

    from concertops.cli import console
    from concertops.redact import redact_text

    document = {
        "runbook": runbook_id,
        "dry_run": dry_run,
        "run_id": "",
        "exit_code": refused.exit_code,
        "message": "refused, nothing is applied: " + redact_text(refused.one_line()),
        "before": None,
        "steps": [],
        "applied": {},
        "after": None,
    }
    console.out().file.write(json.dumps(document, indent=2) + "\n")
