"""``concertops runbooks list|show``: the human pages, rendered."""

from __future__ import annotations

import typer

from concertops.model.errors import UsageError

app = typer.Typer(help="Read the runbook pages (runbooks/A-1.md …).", no_args_is_help=True)


@app.command("list")
def list_runbooks() -> None:
    """Every runbook with its title, main signal and remediation steps."""
    from concertops.cli import console
    from concertops.runbooks.pages import RUNBOOK_IDS, load

    table = console.table("id", "title", "command", "main signal", "remediation")
    for runbook_id in RUNBOOK_IDS:
        page = load(runbook_id)
        table.add_row(
            page.id,
            page.title,
            f"concertops {page.id.replace('-', '').lower()}",
            page.main_signal.title,
            ", ".join(step.id for step in page.remediation),
        )
    console.out().print(table)


@app.command("show")
def show(runbook_id: str = typer.Argument(..., metavar="ID", help="A-1 … B-4 (a1, A1 work too).")) -> None:
    """One runbook's page: meaning, impact, diagnosis, mitigation, limits, and its signals."""
    from concertops.cli import console
    from concertops.runbooks.pages import RUNBOOK_IDS, load, normalise_id

    try:
        page = load(normalise_id(runbook_id))
    except ValueError:
        raise UsageError(f"unknown runbook {runbook_id!r}", f"use one of {', '.join(RUNBOOK_IDS)}") from None
    out = console.out()
    out.print(console.markdown(page.body))
    out.print()
    out.print("[bold]Signals[/]")
    for signal in page.signals:
        limits = ", ".join(
            f"{name} {'<' if signal.below else '>'} {value:g}"
            for name, value in (("warning", signal.warning), ("critical", signal.critical))
            if value is not None
        )
        tags = ", ".join(t for t in (signal.kind, "decisive" if signal.decisive else "", limits) if t)
        out.print(f"  • {signal.title} [dim]({tags})[/]")
        out.print(f"    [dim]{signal.describe_query()}[/]")
