"""The seven runbook commands ``a1`` … ``b4``: without options the diagnosis and the plan; with ``--dry-run``
every step run in a mode that changes nothing; with ``--apply`` the fix, then verification.

Each command's own options are the knobs and hard limits of its steps, with the runbook page's values as
defaults, so ``concertops a1 --help`` says what can be tuned."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from concertops.cli.check import FORMAT_OPTION, OUTPUT_OPTION, TIMEOUT_OPTION, Format, run_report
from concertops.cli.state import OPTIONS
from concertops.errors import UsageError

APPLY = typer.Option(False, "--apply", help="Remediate: confirm, lock, run the steps (audited), verify.")
DRY_RUN = typer.Option(
    False, "--dry-run", help="Run every step in a mode that changes nothing; exact counts."
)
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (automation).")
REASON = typer.Option("", "--reason", help="Why, for the settings history and the audit (e.g. INC-1234).")
VERIFY_TIMEOUT = typer.Option(
    90.0, "--verify-timeout", min=0, max=3600, help="Seconds to wait for the signals to recover."
)
VERIFY_WINDOW = typer.Option(
    "30s", "--verify-window", help="Rate window when verifying (the incident's minutes must not count)."
)

Tuned = tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], frozenset[str]]


# Every runbook command takes these; its own options (the knobs of its steps) come first.
COMMON: tuple[tuple[str, Any, Any], ...] = (
    ("apply", bool, APPLY),
    ("dry_run", bool, DRY_RUN),
    ("yes", bool, YES),
    ("reason", str, REASON),
    ("fmt", Format, FORMAT_OPTION),
    ("output", Path | None, OUTPUT_OPTION),
    ("timeout", float, TIMEOUT_OPTION),
    ("verify_timeout", float, VERIFY_TIMEOUT),
    ("verify_window", str, VERIFY_WINDOW),
)


def command(runbook_id: str) -> Callable[..., None]:
    """The typer command of one runbook: its tuning options followed by the common ones."""
    tune = _TUNING.get(runbook_id)

    def run(**given: Any) -> None:
        common = {name: given.pop(name) for name, _kind, _option in COMMON}
        _run(runbook_id, tuned=tune(**given) if tune else ({}, {}, frozenset()), **common)

    own = list(inspect.signature(tune).parameters.values()) if tune else []
    params = own + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, kind, option in COMMON
    ]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {param.name: param.annotation for param in params}
    return run


def _run(
    runbook_id: str,
    *,
    fmt: Format,
    output: Path | None,
    timeout: float,
    apply: bool,
    dry_run: bool,
    yes: bool,
    reason: str,
    verify_timeout: float,
    verify_window: str,
    tuned: Tuned = ({}, {}, frozenset()),
) -> None:
    if not (apply or dry_run):
        # One runbook: every signal is worth a line, healthy ones included.
        run_report([runbook_id], fmt, output, timeout, show_all=True)
        return
    if apply and dry_run:
        raise UsageError("--apply and --dry-run exclude each other", "use --dry-run first, then --apply")
    if fmt not in (Format.table, Format.json) or output is not None:
        raise UsageError("--apply and --dry-run report as table or json", "drop --output, use --format json")
    from concertops.cli import apply_view
    from concertops.engine.remediate import Options, Tuning, remediate
    from concertops.engine.signals import WINDOW_PATTERN
    from concertops.runbooks.registry import get

    if not WINDOW_PATTERN.match(verify_window):
        raise UsageError(f"--verify-window {verify_window!r} is not a duration", "e.g. 30s, 2m")
    params, limits, enable = tuned
    options = Options(
        dry_run=dry_run,
        yes=yes,
        reason=reason,
        timeout_s=timeout,
        verify_timeout_s=verify_timeout,
        verify_window=verify_window,
        tuning=Tuning(params, limits, enable),
    )
    ui = apply_view.TerminalUi(quiet=fmt is Format.json)
    try:
        result = remediate(OPTIONS.load_profile(), get(runbook_id), options, ui)
    finally:
        ui.stop()
    apply_view.summary(result, ui)
    if fmt is Format.json:
        import json

        from concertops.cli import console

        console.out().file.write(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    raise typer.Exit(result.exit_code)


def _keep(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _a1(
    tokens: int = typer.Option(
        None, "--tokens", min=1, help="max_active_tokens to cut to (page: 20; limit ≥ 10)."
    ),
    pool_size: int = typer.Option(
        None,
        "--pool-size",
        min=1,
        help="db_pool_size per instance (page: 30; refused beyond 50% of max_connections).",
    ),
    rate_limit_rps: int = typer.Option(
        None, "--rate-limit-rps", min=1, help="Also throttle each instance to this many requests/s."
    ),
) -> Tuned:
    params = {
        "fewer-active-tokens": _keep(value=tokens),
        "explicit-pool": _keep(value=pool_size),
        "throttle": _keep(value=rate_limit_rps),
    }
    return params, {}, frozenset({"throttle"} if rate_limit_rps else set())


def _a2(
    max_schedules: int = typer.Option(
        None, "--max-schedules", min=1, help="Most schedules to mark sold out in one run (page: 100)."
    ),
) -> Tuned:
    return {}, {"mark-sold-out": _keep(max_schedules=max_schedules)}, frozenset()


def _a3(
    interval: int = typer.Option(
        None, "--interval", min=1, help="queue_activation_interval_s for the polling fallback (page: 1)."
    ),
    raise_tokens: int = typer.Option(
        None, "--raise-tokens", min=1, help="Also raise max_active_tokens to this (limit 200; watch A-1)."
    ),
    max_activate: int = typer.Option(
        None, "--max-activate", min=1, help="Most WAITING tokens to activate now (page: 500)."
    ),
) -> Tuned:
    params = {"shorter-period": _keep(value=interval), "more-active-tokens": _keep(value=raise_tokens)}
    limits = {"activate-now": _keep(max_tokens=max_activate)}
    return params, limits, frozenset({"more-active-tokens"} if raise_tokens else set())


def _republish(step: str) -> Callable[..., Tuned]:
    """B-1 and B-4 tune the same re-publish step (under their own step ids)."""

    def tune(
        since: datetime | None = typer.Option(
            None,
            "--since",
            formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"],
            help="Window start, UTC (default: B-4 where Prometheus saw events dropped, else the last hour).",
        ),
        until: datetime | None = typer.Option(
            None, "--until", formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"], help="Window end, UTC."
        ),
        max_events: int = typer.Option(
            None, "--max-events", min=1, help="Most events to rebuild in one run (page: 1000)."
        ),
        batch: int = typer.Option(
            None, "--batch", min=1, max=10_000, help="Events per publish batch (page: 100)."
        ),
        max_rate: int = typer.Option(
            None, "--max-rate", min=1, help="Events per second at most (page: 500)."
        ),
    ) -> Tuned:
        params = {step: _keep(since=since, until=until)}
        limits = {step: _keep(max_events=max_events, batch=batch, max_rate=max_rate)}
        return params, limits, frozenset()

    return tune


def _b2(
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, max=10_000, help="Holds per committed batch (page: 500)."
    ),
    max_rows: int = typer.Option(
        None, "--max-rows", min=1, help="Most holds to expire in one run (page: 50000)."
    ),
    sleep: float = typer.Option(None, "--sleep", min=0, max=60, help="Seconds between batches (page: 0)."),
    max_messages: int = typer.Option(
        None, "--max-messages", min=1, help="Most DLQ messages to replay (page: 10000)."
    ),
    max_replays: int = typer.Option(
        None, "--max-replays", min=1, help="Quarantine a DLQ message replayed this often already (page: 3)."
    ),
    replay_rate: int = typer.Option(
        None, "--replay-rate", min=1, help="DLQ messages per second at most (page: 500)."
    ),
) -> Tuned:
    limits = {
        "force-expire": _keep(batch=batch_size, max_rows=max_rows, sleep=sleep),
        "replay-dlq": _keep(max_messages=max_messages, max_replays=max_replays, max_rate=replay_rate),
    }
    return {}, limits, frozenset()


def _b3(
    idle_seconds: int = typer.Option(
        None, "--idle-seconds", min=1, help="Kill only connections asleep longer (page: 10)."
    ),
    max_kills: int = typer.Option(
        None, "--max-kills", min=1, max=1000, help="Most connections to kill (page: 20)."
    ),
    app_user: str = typer.Option(
        None, "--app-user", help="The service's database user (default: the profile's database user)."
    ),
    pool_size: int = typer.Option(None, "--pool-size", min=1, help="db_pool_size per instance (page: 30)."),
) -> Tuned:
    params = {"kill-idle": _keep(app_user=app_user), "pool-30": _keep(value=pool_size)}
    limits = {"kill-idle": _keep(min_idle_s=idle_seconds, max_kills=max_kills)}
    return params, limits, frozenset()


_TUNING: dict[str, Callable[..., Tuned]] = {
    "A-1": _a1,
    "A-2": _a2,
    "A-3": _a3,
    "B-1": _republish("republish-missed"),
    "B-2": _b2,
    "B-3": _b3,
    "B-4": _republish("republish-window"),
}
