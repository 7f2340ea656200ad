"""The errors concertops reports to its users, each with the exit code it maps to.

One place (``concertops.cli.main.run``) turns these into a one-line message and an exit code;
nothing else calls ``sys.exit``.
"""

from __future__ import annotations

UNKNOWN = 3


class ConcertopsError(Exception):
    """An error the user can act on: ``str(err)`` names the thing, ``hint`` the fix."""

    exit_code: int = UNKNOWN

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        return f"{self}" + (f" — {self.hint}" if self.hint else "")


class ConfigError(ConcertopsError):
    """The configuration file, a profile or an override is missing or malformed."""


class UsageError(ConcertopsError):
    """The command line asks for something that cannot be done as written."""


class SourceUnreachable(ConcertopsError):
    """A service (database, Redis, broker, Prometheus) did not answer."""


class MapGap(LookupError):
    """What the service map names is not in the live service (a table, a topic, a key's family):
    the signal is UNKNOWN, and its runbook cannot read OK on the others (concertops.model.status)."""


class DevstackError(ConcertopsError):
    """A component of the local stack could not be started or stopped."""
