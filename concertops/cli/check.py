"""``concertops check``: detection, evidence and the plan, for every runbook at once (and the report the
runbook commands share)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from concertops.cli.state import OPTIONS, began, remaining
from concertops.model.errors import UsageError


class Format(StrEnum):
    table = "table"
    json = "json"
    nagios = "nagios"
    prom = "prom"


class TableOrJson(StrEnum):
    """For commands that list rather than check (settings, audit, triage)."""

    table = "table"
    json = "json"


FORMAT_OPTION = typer.Option(
    Format.table, "--format", "-f", help="table (people), json (scripts), nagios (one line), prom (textfile)."
)
OUTPUT_OPTION = typer.Option(
    None,
    "--output",
    "-o",
    metavar="FILE",
    help="Write there atomically instead of stdout (textfile collector).",
)
TIMEOUT_OPTION = typer.Option(
    5.0,
    "--timeout",
    min=1,
    max=120,
    envvar="CONCERTOPS_TIMEOUT",
    help="Seconds the whole command may take, start-up included: connects, pool waits, reads, Kafka and HTTP "
    "(the default fits a 10 s NRPE budget; a slow or busy host may want more).",
)
ALL_OPTION = typer.Option(False, "--all", "-a", help="Table: list OK signals too, not only the firing ones.")


def check(
    ids: list[str] = typer.Argument(
        None, metavar="[ID]...", help="Runbooks to check (A-1, a1 …); default all."
    ),
    fmt: Format = FORMAT_OPTION,
    output: Path | None = OUTPUT_OPTION,
    timeout: float = TIMEOUT_OPTION,
    show_all: bool = ALL_OPTION,
    window: str | None = typer.Option(
        None,
        "--window",
        metavar="DURATION",
        help="Judge every rate and quantile over this window (e.g. 30s) instead of the runbook's: right "
        "after a fix, the default minutes still hold the incident.",
    ),
    exit_status: bool = typer.Option(
        False,
        "--exit-status",
        help="With --output: exit with the check's status (default: 0 once the file is written, as a "
        "textfile collector's cron job wants).",
    ),
) -> None:
    """Detect every incident of the manual at once: for cron, CI and the first look at 3 a.m.

    Exit code: 2 CRITICAL when anything was measured critical; else 3 UNKNOWN when a runbook could not be
    judged (none of its decisive signals measured); else the worst status (0 OK, 1 WARNING).

    Examples:

      concertops check                      # all seven, as a table

      concertops check B-2 a1 --format json

      concertops check -f prom -o /var/lib/node_exporter/concertops.prom
    """
    from concertops.runbooks.pages import RUNBOOK_IDS, normalise_id

    wanted: list[str] = []
    for raw in ids or RUNBOOK_IDS:
        try:
            wanted.append(normalise_id(raw))
        except ValueError:
            raise UsageError(f"unknown runbook {raw!r}", f"use one of {', '.join(RUNBOOK_IDS)}") from None
    if window is not None:
        from concertops.model.signals import WINDOW_PATTERN

        if not WINDOW_PATTERN.match(window):
            raise UsageError(f"--window {window!r} is not a duration", "e.g. 30s, 2m")
    run_report(list(dict.fromkeys(wanted)), fmt, output, timeout, show_all, window, exit_status)


def run_report(
    ids: list[str],
    fmt: Format,
    output: Path | None,
    timeout: float,
    show_all: bool,
    window: str | None = None,
    exit_status: bool = True,
) -> None:
    from concertops.cli import render
    from concertops.engine.check import run_check
    from concertops.runbooks.registry import get

    if fmt is Format.table and output is not None:
        raise UsageError("--output needs a machine format", "add --format json, nagios or prom")
    profile = OPTIONS.load_profile()
    runbooks = [get(i) for i in ids]
    report = run_check(
        profile,
        runbooks,
        remaining(timeout),
        history=fmt is Format.table and output is None,
        window=window,
        since=began(),
    )
    if fmt is Format.table and output is None:
        render.table(report, show_all)
    else:
        text = render.as_text(report, fmt.value)
        if output is not None:
            render.write_atomically(output, text)
            if not exit_status:
                raise typer.Exit(0)  # written: the file carries the statuses
        else:
            import sys

            sys.stdout.write(text)  # a machine format: no console (rich) to build for it
    raise typer.Exit(report.exit_code)
