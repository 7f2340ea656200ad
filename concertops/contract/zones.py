"""The zone a service writes its datetimes in: ``UTC``, a fixed offset (``+09:00``) or an IANA name
(``Asia/Seoul``, ``Europe/Berlin``), read with the standard library's ``zoneinfo`` (MySQL's own time-zone
tables may be empty).

A zone with daylight saving time has no single offset. A cutoff ("now, as the service writes it") uses the
smallest offset the zone had over the last day: within a day after a change, a row written under the other
offset is then judged late rather than early. So a hold is never called overdue before it is due; one just
due may wait up to the change's size (an hour) more.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_OFFSET = re.compile(r"^([+-])(0\d|1[0-4]):([0-5]\d)$")
LOOKBACK = timedelta(days=1)


class UnknownZone(ValueError):
    pass


@functools.cache
def zone_of(name: str) -> tzinfo:
    """``UTC``, ``+09:00`` or an IANA name as a tzinfo; UnknownZone when it is none of them."""
    if name == "UTC":
        return UTC
    fixed = _OFFSET.match(name)
    if fixed:
        sign = -1 if fixed.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(fixed.group(2)), minutes=int(fixed.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if "/" not in name or name.startswith("/") or ".." in name:
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownZone(
            f"zone {name!r} is not a time zone: write UTC, an offset like +09:00, or an IANA name like "
            "Asia/Seoul"
        ) from None


def offset_at(name: str, instant: datetime) -> timedelta:
    """The zone's offset from UTC at ``instant`` (naive: UTC)."""
    moment = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return moment.astimezone(zone_of(name)).utcoffset() or timedelta(0)


def cutoff_offset(name: str, now: datetime) -> timedelta:
    """The offset a cutoff at ``now`` (naive: UTC) uses: the smallest the zone had over the last day."""
    hours = int(LOOKBACK.total_seconds() // 3600)
    return min(offset_at(name, now - timedelta(hours=h)) for h in range(hours + 1))


def is_fixed(name: str) -> bool:
    return name == "UTC" or _OFFSET.match(name) is not None


def offset_text(offset: timedelta) -> str:
    """``+09:00``, ``-03:30``, ``+00:00``."""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def now_sql(offset: timedelta, dialect: str) -> str:
    """The database's current UTC time moved by ``offset``: "now" as the service writes it."""
    seconds = int(offset.total_seconds())
    if dialect == "sqlite":
        return "datetime('now')" if not seconds else f"datetime('now', '{seconds:+d} seconds')"
    return "UTC_TIMESTAMP()" if not seconds else f"(UTC_TIMESTAMP() + INTERVAL {seconds} SECOND)"
