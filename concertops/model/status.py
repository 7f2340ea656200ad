"""A status is its exit code (the Nagios plugin convention cron, Icinga and CI understand)."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Status(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


def overall(statuses: Iterable[Status]) -> Status:
    """The worst status measured; UNKNOWN only when nothing decisive could be measured.

    An unreachable source makes its signals UNKNOWN, but it must not hide a CRITICAL measured elsewhere,
    nor turn an all-clear from the sources that answered into an alarm."""
    measured = [s for s in statuses if s is not Status.UNKNOWN]
    return max(measured) if measured else Status.UNKNOWN
