"""The zone a service writes its times in, as its own rows show it, held against its map's ``zone``.

A map names, per table, a pair of columns (``clock: {service: heldAt, database: createdAt}``): one the
service writes in its process's zone, one the database writes (``DEFAULT CURRENT_TIMESTAMP``, in the
server's zone). On recent rows (up to 50 of the last day) their difference, plus the server's own offset,
is the service's offset from UTC. Every cutoff of a signal or a step that compares the service's times is
taken in the zone this reading decides:

- the rows agree with the map: the map's zone;
- they contradict it, all alike: the offset they show, and the reading says so;
- no recent row: the map's zone, and the reading says it was not checked;
- no pair in the map: the map's zone (``doctor`` says it is not checked);
- rows that disagree among themselves, or a pair the database lacks: nothing is decided (an error).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from concertops.contract.service_map import ServiceMap
from concertops.contract.zones import cutoff_offset, offset_at, offset_text
from concertops.sources.database import database_now

ROWS = 50  # rows of the last day looked at
TOLERANCE_S = 120  # a service's write and the database's may be this far apart (the same INSERT)
AGREEING_SHARE = 0.8  # of the rows, for the map's zone to hold, or for another to be read from them
STEP_S = 900  # zone offsets are whole quarter hours


class ZoneUnreadable(Exception):
    """The data could not decide a zone: the message says why."""


@dataclass(frozen=True)
class ZoneReading:
    declared: str  # the map's zone
    offset: timedelta  # what a cutoff uses ("now" as the service writes it)
    note: str = ""  # what the data said, when it is worth a line: a contradiction, or not checked
    contradicted: bool = False
    implied: str = ""  # the offset the data shows ("+09:00"), when it showed one
    rows: int = 0  # the rows the reading rests on


def read_zone(conn: Any, shape: ServiceMap, logical: str, now: datetime | None = None) -> ZoneReading:
    """The zone ``shape``'s table ``logical`` shows, on ``conn`` (a SQLAlchemy connection)."""
    import sqlalchemy as sa

    zone = shape.zone
    table = shape.table(logical)
    clock = table.clock if table is not None else None
    sqlite = conn.dialect.name == "sqlite"
    if now is None:
        now = database_now(conn)
    declared = cutoff_offset(zone, now)
    if table is None or clock is None:
        # No evidence named: the map's zone, as written (doctor says the zone is not checked).
        return ZoneReading(zone, declared)
    server_s = 0 if sqlite else _server_offset_s(conn)
    svc, db = f"`{clock.service}`", f"`{clock.database}`"
    if sqlite:
        diff = f"CAST(ROUND((julianday({svc}) - julianday({db})) * 86400) AS INTEGER)"
        since = "datetime('now', '-1 day')"
    else:
        diff = f"TIMESTAMPDIFF(SECOND, {db}, {svc})"
        since = f"(UTC_TIMESTAMP() + INTERVAL {server_s} SECOND - INTERVAL 1 DAY)"
    # The first rows of the last day the scan meets, not the newest: without an index on the database's
    # column (production has none), ORDER BY would sort the whole table on every probe (2.5 s at 2,000,000
    # rows, BENCHMARKS.md); this stops after ROWS recent ones.
    statement = (
        f"SELECT {db}, {diff} FROM `{table.table}` WHERE {db} >= {since} AND {svc} IS NOT NULL LIMIT {ROWS}"
    )
    try:
        found = [(_as_datetime(at), int(d)) for at, d in conn.execute(sa.text(statement)) if d is not None]
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        raise ZoneUnreadable(
            f"the zone could not be read from {table.table}.{clock.service}/{clock.database} "
            f"(tables.{logical}.clock): {type(orig).__name__}: {str(orig).splitlines()[0][:160]}"
        ) from None
    return judge_rows(zone, logical, table.table, (clock.service, clock.database), server_s, found, now)


def judge_rows(
    zone: str,
    logical: str,
    table: str,
    pair: tuple[str, str],
    server_s: int,
    found: list[tuple[datetime, int]],
    now: datetime,
) -> ZoneReading:
    """Pure: the reading of ``found`` rows, each (the database's time, service time - database time)."""
    declared = cutoff_offset(zone, now)
    svc, db = pair
    if not found:
        note = f"zone {zone} as the map says, not checked: no {table} row written in the last day"
        return ZoneReading(zone, declared, note)
    shown: list[timedelta] = []
    agreeing = 0
    for at, diff_s in found:
        instant = at - timedelta(seconds=server_s)  # the row's instant in UTC
        offset = timedelta(seconds=diff_s + server_s)  # the service's offset from UTC at that instant
        if abs((offset - offset_at(zone, instant)).total_seconds()) <= TOLERANCE_S:
            agreeing += 1
        shown.append(offset)
    if agreeing >= AGREEING_SHARE * len(found):
        return ZoneReading(zone, declared, rows=len(found))
    whole = [_quarter_hours(o) for o in shown]
    (common, count), *_ = Counter(whole).most_common(1)
    if common is None or count < AGREEING_SHARE * len(found):
        raise ZoneUnreadable(
            f"{len(found)} {table} rows of the last day disagree on the service's zone ({svc} against {db}): "
            f"not judged in the map's {zone} nor in any other"
        )
    implied = offset_text(common)
    note = (
        f"the service writes times {implied} from UTC ({len(found)} {table} rows of the last day, {svc} "
        f"against {db}); the map says {zone}: judged at {implied} (fix the map's zone: `concertops doctor`)"
    )
    return ZoneReading(zone, common, note, contradicted=True, implied=implied, rows=len(found))


def _quarter_hours(offset: timedelta) -> timedelta | None:
    seconds = offset.total_seconds()
    whole = round(seconds / STEP_S) * STEP_S
    return timedelta(seconds=whole) if abs(seconds - whole) <= TOLERANCE_S else None


def _server_offset_s(conn: Any) -> int:
    """The offset of the server's own zone (what ``DEFAULT CURRENT_TIMESTAMP`` writes in for the service's
    sessions, which set none), from UTC now."""
    import sqlalchemy as sa

    value = conn.execute(
        sa.text(
            "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(),"
            " CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', @@global.time_zone)), @@global.time_zone"
        )
    ).first()
    if value is None or value[0] is None:
        zone = value[1] if value is not None else "?"
        raise ZoneUnreadable(
            f"the database server's zone {zone} is not known to it (its time-zone tables are empty): the "
            "times it writes cannot be compared"
        )
    return int(round(int(value[0]) / 60) * 60)


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
