"""Asking before a change: yes/no, or on a protected profile the profile's name typed out."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from concertops.model.errors import UsageError

if TYPE_CHECKING:
    from concertops.config import Profile


def confirmed(profile: Profile, question: str, to_stderr: bool = False) -> bool:
    """True when the operator agrees; without a terminal there is nobody to ask (exit 3: use --yes)."""
    import typer

    if not sys.stdin.isatty():
        raise UsageError("confirmation needs a terminal", "add --yes to go ahead without asking (automation)")
    if profile.protected:
        typed = typer.prompt(
            f"Profile '{profile.name}' is protected: type its name to go ahead", err=to_stderr
        )
        return str(typed).strip() == profile.name
    return bool(typer.confirm(f"{question} (profile '{profile.name}')", default=False, err=to_stderr))
