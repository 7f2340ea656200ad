"""``concertops devstack``: the real services on 127.0.0.1 for tests, demos and benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from concertops.cli import console

if TYPE_CHECKING:
    from concertops.devstack.stack import ComponentState

app = typer.Typer(
    help="Start, stop and inspect the local stack: MariaDB, Redis, Tansu, Prometheus and exporters.",
    no_args_is_help=True,
)

_STYLE = {
    "reused": "cyan",
    "started": "green",
    "running": "green",
    "healthy": "green",
    "stopped": "yellow",
    "not running": "dim",
    "failed": "bold red",
    "down": "bold red",
}


def _line(state: ComponentState) -> None:
    style = _STYLE.get(state.state, "")
    detail = f"  {state.detail}" if state.detail else ""
    console.out().print(f"{state.name:<16} [{style}]{state.state:<11}[/]{detail}", markup=True)


@app.command()
def up(
    targets_timeout: float = typer.Option(
        30.0, help="Seconds to wait for Prometheus to report every target up."
    ),
) -> None:
    """Start every component not already answering; reuse MariaDB/Redis that already run.

    Missing Debian packages are installed with apt-get when running as root. On any failure the components
    started by this call are stopped again, and the exit code is 3.
    """
    from concertops.contract.discovery import state_dir
    from concertops.devstack.stack import up as stack_up

    root = state_dir()
    console.out().print(f"[dim]state directory {root}[/]")
    states = stack_up(root, report=_line, targets_timeout=targets_timeout)
    raise typer.Exit(0 if all(s.ok for s in states) else 3)


@app.command()
def down() -> None:
    """Stop only the processes the devstack started, by their recorded PIDs."""
    from concertops.contract.discovery import state_dir
    from concertops.devstack.stack import down as stack_down

    for state in stack_down(state_dir()):
        _line(state)


@app.command()
def status() -> None:
    """One line per component: healthy or down, and whether the devstack started it. Exit 3 if any is down."""
    from concertops.contract.discovery import state_dir
    from concertops.devstack.stack import status as stack_status

    states = stack_status(state_dir())
    for state in states:
        _line(state)
    raise typer.Exit(0 if all(s.ok for s in states) else 3)
