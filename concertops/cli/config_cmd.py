"""``concertops config``: which profile is in force and where each value came from."""

from __future__ import annotations

import json

import typer

from concertops.cli import console
from concertops.cli.state import OPTIONS

app = typer.Typer(help="Show the resolved configuration (passwords masked).", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Print the profile in force, after CONCERTOPS_* overrides, with every password masked."""
    from concertops.contract import service_map
    from concertops.engine import state_store
    from concertops.redact import redact_url

    profile = OPTIONS.load_profile()
    described = profile.describe()
    shape = service_map.for_profile(profile)  # validated here: a bad map is one line, exit 3
    described["service_map"] = f"{shape.name} ({shape.source})"
    # Where concertops's own state would be looked for, in order (nothing is connected to here).
    described["state_store"] = [f"{redact_url(s.url)} ({s.why})" for s in state_store.candidates(profile)]
    if as_json:
        console.out().print_json(json.dumps(described))
        return
    for key, value in described.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.out().print(f"{key:<24} {shown}", markup=False)
