"""SQL signals through SQLAlchemy: one number per query, plus evidence rows when the signal is not OK."""

from __future__ import annotations

import threading
from typing import Any

from concertops.contract.binding import NOW
from concertops.contract.zones import now_sql
from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line
from concertops.sources.clock import ZoneReading, ZoneUnreadable, read_zone

SOURCE = "sql"
DETAIL_ROWS = 10


class SqlSource:
    def __init__(self, url: str, timeout_s: float, connections: int = 4, shape: Any = None) -> None:
        from concertops.sources.database import open_engine

        # The same sessions as remediation (UTC, READ COMMITTED), every wait bound by the probe's deadline:
        # a locked table must not hang a cron check.
        self.engine = open_engine(
            url, timeout_s, connections, read_timeout_s=timeout_s, pool_wait_s=timeout_s
        )
        self._privileges: frozenset[str] | None = None
        self._privileges_read = False
        # The first connect decides for every signal: a database that refused it is not asked again, and
        # no signal waits out the pool's timeout for connections that will never come.
        self._first_connect = threading.Lock()
        self._connect_tried = False
        self._refused: str | None = None
        # The zone each table's rows show, read once per table (a persistent source: once a minute).
        self.zones = ZoneCache(shape)

    def observe(self, signal: Signal) -> Observation:
        import sqlalchemy as sa

        query, detail = signal.query, signal.detail
        if self.engine.dialect.name == "sqlite":
            if signal.mysql_only:
                return Observation(
                    signal.name, SOURCE, query, not_applicable=f"{signal.mysql_only} on SQLite"
                )
            query, detail = signal.sqlite_query or query, signal.sqlite_detail or detail
        refused = self._refusal()
        if refused is not None:
            return Observation(signal.name, SOURCE, query, error=refused)
        held = self.privileges() if signal.privileges else frozenset()
        if held is None and self.engine.dialect.name != "sqlite":
            # Not knowing is not having: the server would answer with a smaller number, not an error.
            return Observation(
                signal.name,
                SOURCE,
                query,
                error=f"needs {' and '.join(signal.privileges)} privilege, and the user's privileges could "
                "not be read (information_schema.USER_PRIVILEGES)",
            )
        lacking = [p for p in signal.privileges if held is not None and p not in held]
        if lacking and self.engine.dialect.name != "sqlite":
            user = self.engine.url.username or "the profile's user"
            return Observation(
                signal.name,
                SOURCE,
                query,
                error=f"needs {' and '.join(lacking)} privilege ({user} lacks it: the server would show "
                f"only {user}'s own rows)",
            )
        note = ""
        try:
            with self.engine.connect() as conn:
                if NOW in query or NOW in detail:
                    reading = self.zones.reading(conn, signal.zoned)
                    now = now_sql(reading.offset, self.engine.dialect.name)
                    query, detail, note = query.replace(NOW, now), detail.replace(NOW, now), reading.note
                row = conn.execute(sa.text(query)).first()
                if row is None:
                    # SHOW STATUS LIKE 'X' on a server without X: nothing was measured, not a zero.
                    return Observation(
                        signal.name, SOURCE, query, error="no row: the server has no such value"
                    )
                value = None if row[signal.column] is None else float(row[signal.column])
                rows: tuple[tuple[Any, ...], ...] = ()
                columns: tuple[str, ...] = ()
                if detail:
                    evidence = conn.execute(sa.text(detail))
                    columns = tuple(evidence.keys())
                    rows = tuple(tuple(r) for r in evidence.fetchmany(DETAIL_ROWS))
        except ZoneUnreadable as exc:
            return Observation(signal.name, SOURCE, query, error=str(exc), map_gap=True)
        except Exception as exc:  # SQLAlchemyError, a non-numeric column
            return Observation(signal.name, SOURCE, query, error=_describe(exc), map_gap=names_missing(exc))
        if value is None:
            if signal.null_means:
                return Observation(signal.name, SOURCE, query, error=signal.null_means)
            value = 0.0  # SUM over no row
        return Observation(signal.name, SOURCE, query, value=value, rows=rows, columns=columns, note=note)

    def _refusal(self) -> str | None:
        """Why the database cannot be reached (asked once, by the first signal), or None."""
        with self._first_connect:
            if not self._connect_tried:
                self._connect_tried = True
                try:
                    self.engine.connect().close()
                except Exception as exc:  # OperationalError: refused, unknown host, access denied
                    self._refused = _describe(exc)
        return self._refused

    def privileges(self) -> frozenset[str] | None:
        """The global privileges of the connection's user, read once per probe (``ALL`` counts as each);
        None when they could not be read."""
        if not self._privileges_read:
            self._privileges, self._privileges_read = user_privileges(self.engine), True
        return self._privileges

    def close(self) -> None:
        self.engine.dispose()


class ZoneCache:
    """The zone readings of one source, per logical table, kept ``ttl_s`` (a reading is a query)."""

    def __init__(self, shape: Any, ttl_s: float = 60.0) -> None:
        self.shape, self.ttl_s = shape, ttl_s
        self._lock = threading.Lock()
        self._readings: dict[str, tuple[float, Any]] = {}

    def reading(self, conn: Any, logical: str) -> ZoneReading:
        import time

        from concertops.contract.service_map import load

        with self._lock:
            kept = self._readings.get(logical)
            if kept is not None and time.monotonic() - kept[0] < self.ttl_s:
                if isinstance(kept[1], ZoneUnreadable):
                    raise kept[1]
                return kept[1]
            try:
                found: Any = read_zone(conn, self.shape or load(None), logical)
            except ZoneUnreadable as exc:
                found = exc
            self._readings[logical] = (time.monotonic(), found)
        if isinstance(found, ZoneUnreadable):
            raise found
        return found


def user_privileges(engine: Any) -> frozenset[str] | None:
    """Global privileges of ``engine``'s user on MySQL/MariaDB (SQLite: every one); None when they could
    not be read, which callers must treat as not held."""
    import sqlalchemy as sa

    if engine.dialect.name == "sqlite":
        return _AllPrivileges()
    try:
        with engine.connect() as conn:
            found = {
                str(p).upper()
                for p in conn.execute(
                    sa.text("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES")
                ).scalars()
            }
    except Exception:  # the query itself failed: unknown, never "everything"
        return None
    return _AllPrivileges(found) if "ALL PRIVILEGES" in found else frozenset(found)


class _AllPrivileges(frozenset[str]):
    """Every privilege (ALL PRIVILEGES), or not knowable here: nothing is withheld on its account."""

    def __contains__(self, item: object) -> bool:
        return True


# MySQL's "table doesn't exist", "unknown column"; SQLite says it in words.
_MISSING_CODES = (1146, 1054)


def names_missing(exc: BaseException) -> bool:
    """Whether a query failed because a table or column it names is not in the database (the map's gap)."""
    orig = getattr(exc, "orig", None) or exc
    code = orig.args[0] if getattr(orig, "args", None) else None
    if isinstance(code, int) and code in _MISSING_CODES:
        return True
    text = str(orig).lower()
    return "no such table" in text or "no such column" in text


def _describe(exc: Exception) -> str:
    """The driver's own error (``orig``) rather than SQLAlchemy's wrapper text, named by its type."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {error_line(orig)}"
