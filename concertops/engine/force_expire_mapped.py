"""B-2 on a service described by its service map (string or integer keys, its own column names, its zone).

A keyset walk of the primary key in batches. Each batch finds the last of the next ``batch`` HELD keys
after the one it reached, from the status index alone (its entries carry the primary key, in order: no
row is read or locked, and only that one key is sent back), then one UPDATE expires the holds of that key
range that are still HELD and overdue, checked under each row's lock, and commits. The
cutoff is the database's clock read once, in the zone the service writes its datetimes in, so neither the
operator's host nor a session time zone moves it; a hold falling due meanwhile is left to the service.
A payment racing a batch either commits first (the hold is CONFIRMED, the batch skips it) or waits for the
row lock and then finds it EXPIRED. Such a service frees a seat by the hold's status alone: there is no
seat row to change.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from concertops.contract.service_map import ServiceMap
from concertops.contract.zones import now_sql
from concertops.engine.action_api import Context, Outcome, Progress
from concertops.engine.force_expire import dry_run_outcome, expired_outcome
from concertops.engine.interrupts import deferred
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.clock import ZoneReading, ZoneUnreadable, read_zone


@dataclass(frozen=True)
class Statements:
    """The step's SQL in the service's own names."""

    count: str
    bound: str  # the last of the next ``n`` HELD keys (only that row crosses the wire)
    last: str  # the last HELD key at all, when fewer than ``n`` are left
    expire: str  # the overdue holds of the key range (``after``, ``high``]
    expire_first: str  # the same from the lowest key

    @classmethod
    def of(cls, shape: ServiceMap) -> Statements:
        table = shape.table("reservation")
        status = table.column("status") if table else None
        expires = table.column("expires_at") if table else None
        if table is None or status is None or expires is None:
            raise UsageError(
                f"force-expire: the service map {shape.name} has no reservation table with status and "
                "expires_at columns",
                "add them to the map's tables.reservation",
            )
        t, k, s, e = (f"`{n}`" for n in (table.table, table.key, status, expires))
        overdue = f"{s} = 'HELD' AND {e} < :cutoff"
        held_after = f"{s} = 'HELD' AND (:after IS NULL OR {k} > :after)"
        return cls(
            count=f"SELECT COUNT(*) FROM {t} WHERE {overdue}",
            bound=f"SELECT {k} FROM {t} WHERE {held_after} ORDER BY {k} LIMIT 1 OFFSET :skip",
            last=f"SELECT MAX({k}) FROM {t} WHERE {held_after}",
            expire=f"UPDATE {t} SET {s} = 'EXPIRED' WHERE {overdue} AND {k} > :after AND {k} <= :high",
            expire_first=f"UPDATE {t} SET {s} = 'EXPIRED' WHERE {overdue} AND {k} <= :high",
        )


@dataclass
class MappedForceExpire:
    step: Step
    total: int = 0
    longest_s: float = 0.0  # the longest batch transaction of the last run (BENCHMARKS.md reads it)
    elapsed_s: float = 0.0
    progress: Progress = field(default_factory=lambda: Progress("holds expired"))

    def prepare(self, ctx: Context) -> str:
        sql = Statements.of(ctx.shape)
        config: catalogue.ForceExpireParams = self.step.config
        with ctx.engine.connect() as conn:
            cutoff, zone = _cutoff(conn, ctx)
            self.total = int(conn.execute(sa.text(sql.count), {"cutoff": cutoff}).scalar_one())
        clock = f"the service's clock at {zone.implied or ctx.shape.zone}"
        if zone.note:
            clock += f"; {zone.note}"
        if not self.total:
            return f"no overdue HELD reservation ({clock})"
        todo = min(self.total, config.max_rows)
        cap = f" (capped by --max-rows {config.max_rows})" if todo < self.total else ""
        return (
            f"expire {todo} of {self.total} overdue holds in batches of {config.batch}{cap} ({clock}); "
            "no seat row to free on this service"
        )

    def run(self, ctx: Context) -> Outcome:
        sql = Statements.of(ctx.shape)
        config: catalogue.ForceExpireParams = self.step.config
        with ctx.engine.connect() as conn:
            cutoff, _zone = _cutoff(conn, ctx)  # fixed for the run
            overdue = int(conn.execute(sa.text(sql.count), {"cutoff": cutoff}).scalar_one())
        total = min(overdue, config.max_rows)
        if not total:
            return Outcome("ok", 0, "nothing to expire: no overdue HELD reservation")
        if ctx.dry_run:
            with ctx.engine.connect() as conn:
                tx = conn.begin()
                first = _expire_batch(conn, sql, cutoff, None, min(config.batch, total))[0]
                tx.rollback()
            return dry_run_outcome(total, config.batch, first)
        bar = ctx.progress("force-expire", total)
        done, longest, started = 0, 0.0, time.monotonic()
        after: Any = None
        try:
            with ctx.engine.connect() as conn:
                while done < total:
                    ctx.ensure_locked()
                    t0 = time.monotonic()
                    self.progress.in_flight = True
                    tx = conn.begin()
                    try:
                        size = min(config.batch, total - done)
                        expired, last = _expire_batch(conn, sql, cutoff, after, size)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            tx.rollback()
                        raise
                    with deferred():  # the commit and its audit row, never one without the other
                        tx.commit()
                        longest = max(longest, time.monotonic() - t0)
                        self.progress.in_flight = False
                        if expired:
                            self.progress.committed(expired)
                            keys = {"after_key": after, "last_key": last}
                            ctx.batch_committed(self.step.id, self.progress.batches, expired, keys)
                    if last is None:
                        break  # no overdue hold after the last key: done
                    done += expired
                    bar.advance(expired)
                    after = last
                    if config.sleep:
                        time.sleep(config.sleep)
        finally:
            bar.close()
        self.longest_s, self.elapsed_s = longest, time.monotonic() - started
        return expired_outcome(done, self.elapsed_s, longest, "holds")


def _cutoff(conn: sa.Connection, ctx: Context) -> tuple[Any, ZoneReading]:
    """Now as the service writes it, in the zone its newest reservations show (or its map's, unchecked)."""
    try:
        zone = read_zone(conn, ctx.shape, "reservation")
    except ZoneUnreadable as exc:
        raise UsageError(
            f"force-expire: {exc}: nothing expired", "fix the map's zone or tables.reservation.clock"
        ) from None
    return conn.execute(sa.text(f"SELECT {now_sql(zone.offset, 'mysql')}")).scalar_one(), zone


def _expire_batch(conn: sa.Connection, sql: Statements, cutoff: Any, after: Any, n: int) -> tuple[int, Any]:
    """Inside the caller's transaction: (holds expired, the last key reached, None when no HELD key was
    left after ``after``)."""
    keys = {"after": after, "skip": n - 1}
    high = conn.execute(sa.text(sql.bound), keys).scalar()
    if high is None:
        high = conn.execute(sa.text(sql.last), keys).scalar()
    if high is None:
        return 0, None
    statement = sql.expire_first if after is None else sql.expire
    done = conn.execute(sa.text(statement), {"after": after, "high": high, "cutoff": cutoff}).rowcount
    return int(done), high
