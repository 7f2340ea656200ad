"""``concertops audit``: who changed what, where, when, with what effect (one row per remediation step)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from concertops.cli.settings_cmd import Fmt
from concertops.cli.state import OPTIONS
from concertops.model.errors import UsageError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def audit(
    runbook: str = typer.Option(None, "--runbook", "-r", help="Only this runbook (A-1, b2 …) or 'settings'."),
    since: str = typer.Option(
        None, "--since", help="Only rows newer than this: 30m, 6h, 7d, or 2026-11-25T10:00."
    ),
    operator: str = typer.Option(None, "--operator", help="Only this operator."),
    run: str = typer.Option(
        None, "--run", help="Only this run (the id an apply prints; a prefix is enough)."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000, help="Newest rows to show."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="table or json."),
    timeout: float = typer.Option(
        5.0, "--timeout", min=1, max=120, help="Seconds to wait for concertops's store (never the service's)."
    ),
) -> None:
    """List remediation audit rows, oldest first.

    Examples:

      concertops audit --runbook B-2 --since 24h

      concertops audit --run 3f2a9c1e --format json
    """
    from concertops.engine.audit import query
    from concertops.engine.state_store import open_state

    # The options are judged before the store is opened: a bad one is named even where no store exists.
    wanted_runbook = _runbook(runbook) if runbook else None
    newer_than = _since(since) if since else None
    profile = OPTIONS.load_profile()
    rows = query(
        open_state(profile, timeout),
        wanted_runbook,
        newer_than,
        operator,
        run,
        limit,
    )
    if fmt is Fmt.json:
        import json

        from concertops.cli import console

        console.out().file.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    from concertops.cli import console

    if not rows:
        console.out().print("no audit rows match")
        return
    table = console.table(
        "started (UTC)",
        "run",
        "runbook",
        "step",
        "result",
        "rows",
        "operator@host",
        "detail",
        edge=False,
        fold=True,
    )
    for r in rows:
        result = r["result"] + (" (dry)" if r["dry_run"] else "")
        table.add_row(
            f"{r['started_at']:%m-%d %H:%M:%S}",
            r["run_id"][:8],
            r["runbook"],
            r["step"],
            result,
            "" if r["affected"] is None else str(r["affected"]),
            f"{r['operator']}@{r['host']}",
            r["detail"],
        )
    console.out().print(table)


def _runbook(raw: str) -> str:
    if raw.lower() == "settings":
        return "settings"
    from concertops.runbooks.pages import RUNBOOK_IDS, normalise_id

    try:
        return normalise_id(raw)
    except ValueError:
        raise UsageError(
            f"unknown runbook {raw!r}", f"use one of {', '.join(RUNBOOK_IDS)} or settings"
        ) from None


def _since(raw: str) -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    if raw[:-1].isdigit() and raw[-1] in _UNITS:
        try:
            return now - timedelta(**{_UNITS[raw[-1]]: int(raw[:-1])})
        except (OverflowError, ValueError):
            raise UsageError(f"--since {raw!r} reaches before year 1", "use a shorter duration") from None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=None)
    except ValueError:
        raise UsageError(
            f"--since {raw!r} is neither a duration nor a date", "e.g. 30m, 6h, 7d or 2026-11-25T10:00"
        ) from None
