"""``concertops doctor``: is every configured source reachable, and what version is it?"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from concertops.sources.health import SourceCheck

from concertops.cli import console
from concertops.cli.state import OPTIONS


def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Check every source of the profile in parallel: database, Redis, Kafka, Prometheus, /metrics, backend.

    Each failure names the source and the fix. Exit 0 when all answer, 3 when any does not.
    """
    from concertops.sources.health import check_sources

    profile = OPTIONS.load_profile()
    checks = check_sources(profile)
    if as_json:
        console.out().print_json(json.dumps({"profile": profile.name, "checks": [asdict(c) for c in checks]}))
    else:
        _render(profile.name, checks)
    raise typer.Exit(0 if checks and all(c.ok for c in checks) else 3)


def _render(profile: str, checks: list[SourceCheck]) -> None:
    from rich.table import Table

    if not checks:
        console.out().print(f"profile {profile}: no source configured — see `concertops config show`")
        return
    table = Table(title=f"profile {profile}")
    for column in ("source", "target", "", "detail"):
        table.add_column(column)
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[bold red]FAIL[/]"
        detail = c.detail if c.ok else f"{c.detail}\n[yellow]fix:[/] {c.fix}"
        table.add_row(c.source, c.target, mark, detail)
    console.out().print(table)
