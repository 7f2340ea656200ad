"""``concertops triage``: which runbooks the firing alerts point at, and what to run, worst first."""

from __future__ import annotations

import json

import typer

from concertops.cli.check import TableOrJson
from concertops.cli.state import OPTIONS
from concertops.model.errors import ConfigError, SourceUnreachable

Fmt = TableOrJson


def triage(
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="table (people) or json (scripts)."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, max=120, help="Seconds to wait for Prometheus."),
) -> None:
    """Read the firing alerts from Prometheus and say which runbook to run, most severe first.

    Exit code: 2 when a paging (P0) alert fires, 1 for warnings (P1/P2), 0 when nothing fires, 3 when
    Prometheus does not answer.

    Examples:

      concertops triage

      concertops triage --format json | jq '.runbooks[0].command'
    """
    from concertops.engine.triage import Alert, overall
    from concertops.engine.triage import triage as group
    from concertops.redact import error_line, redact_url

    profile = OPTIONS.load_profile()
    if not profile.prometheus_url:
        raise ConfigError("triage reads alerts from Prometheus, and none is configured", "set prometheus_url")
    from concertops.sources.prometheus import prometheus

    try:
        raw = prometheus(profile.prometheus_url, timeout).alerts()
    except Exception as exc:  # connection refused, timeout, HTTP error, an answer of another shape
        raise SourceUnreachable(
            f"Prometheus at {redact_url(profile.prometheus_url)} did not answer: {error_line(exc)}",
            "check prometheus_url (concertops doctor); without Prometheus use concertops check",
        ) from None
    leads = group(Alert.from_api(a) for a in raw)
    status = overall(leads)
    if fmt is Fmt.json:
        document = {
            "status": status.name,
            "exit_code": int(status),
            "runbooks": [
                {
                    "id": lead.runbook,
                    "severity": lead.severity,
                    "command": lead.command,
                    "alerts": [a.as_json() for a in lead.alerts],
                }
                for lead in leads
            ],
        }
        from concertops.cli import console

        console.out().file.write(json.dumps(document, indent=2) + "\n")
        raise typer.Exit(int(status))
    _table(leads, redact_url(profile.prometheus_url))
    raise typer.Exit(int(status))


def _table(leads: list, source: str) -> None:
    from concertops.cli import console
    from concertops.cli.render import COLOURS
    from concertops.runbooks.pages import load

    out = console.out()
    firing = sum(len(lead.alerts) for lead in leads)
    out.print(f"[bold]concertops triage[/] — {firing} alert(s) firing ({source})")
    if not leads:
        out.print("[green]nothing fires[/]: run `concertops check` for the signals below alert thresholds")
        return
    for number, lead in enumerate(leads, 1):
        colour = COLOURS[lead.status]
        title = load(lead.runbook).title if lead.runbook else "no runbook"
        out.print(
            f"\n{number}. [{colour}]{lead.severity.upper():<4}[/] [bold]{lead.runbook or '—'}[/] {title}"
            f"  →  [bold]{lead.command}[/]"
        )
        for alert in lead.alerts:
            out.print(f"   {alert.priority} {alert.name}: {alert.description or alert.summary}")
    first = next((lead for lead in leads if lead.runbook), None)
    if first is not None:
        out.print(
            f"\nStart with: [bold]{first.command}[/] (diagnosis and plan), then `{first.command} --apply`"
        )
