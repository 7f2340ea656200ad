"""The top-level command group, with one command per runbook page (``a1`` … ``b4``) built only when needed.

A runbook command's options come from its page (the steps' models), and reading every page costs more
than the rest of the start-up. So listing the commands (``concertops --help``) reads each page's summary
line only; the page is loaded when its command runs or shows its own help.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from concertops.runbooks.pages import RUNBOOK_IDS, summary

PANEL = "Runbooks"


def command_name(runbook_id: str) -> str:
    return runbook_id.replace("-", "").lower()


_BY_NAME = {command_name(i): i for i in RUNBOOK_IDS}


def _help(runbook_id: str, what: str) -> str:
    return (
        f"{runbook_id}: {what}.\n\nWithout options: the diagnosis with its evidence and the remediation plan "
        f"(details: concertops runbooks show {runbook_id}). --dry-run runs every step in a mode that changes "
        "nothing; --apply asks, locks, runs the steps (one audit row each) and probes again.\n\n"
        "Exit: 0 OK, 1 WARNING, 2 CRITICAL, 3 nothing measured. With --apply: 0 resolved and verified, "
        "1 improved but still warning, 2 still critical or a step failed, 3 could not run (refused "
        "confirmation, lock held, bad input)."
    )


def runbook_command(runbook_id: str) -> Any:
    """The full command of one runbook, its options built from its page."""
    from concertops.cli import runbook_cmds
    from concertops.runbooks.pages import load

    page = load(runbook_id)
    single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    single.command(
        command_name(runbook_id),
        short_help=f"{page.id}: {page.summary}.",
        help=_help(page.id, page.summary),
        rich_help_panel=PANEL,
    )(runbook_cmds.command(page))
    return typer.main.get_command(single)


class RunbookGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_BY_NAME]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _BY_NAME:
            return found
        # For the listing only: the name, the summary and the panel.
        runbook_id = _BY_NAME[cmd_name]
        return TyperCommand(
            cmd_name, short_help=f"{runbook_id}: {summary(runbook_id)}.", rich_help_panel=PANEL
        )

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in _BY_NAME:
            return args[0], runbook_command(_BY_NAME[args[0]]), args[1:]
        return super().resolve_command(ctx, args)
