"""B-2: expire overdue HELD holds in short committed batches (pt-archiver style), not one UPDATE over the
whole table as the manual writes it. One walk for every service: its SQL in the service map's names, its
extras from the map's capabilities.

- **gather** reads the cutoff (the database's clock, in the zone the service writes its datetimes in, as
  its rows show it: ``concertops.sources.clock``) and counts the overdue holds: plain data.
- **decide** is pure: the holds to expire, capped by the step's limits, and the plan's line.
- **act** walks the primary key. Each batch is one short transaction over the key range (after, high]:
  with integer keys ``high`` is ``after + size``; with string keys it is the last of the next ``size`` HELD
  keys, read from the status index alone (one row back). The batch expires the holds of its range that
  are still HELD and still overdue, checked under each row's lock, and commits. Where the service has them
  it also frees their seats, lifts a sold-out mark, and writes each hold's expiry event to the outbox (a
  deterministic id: never a second event).

The batch size adapts within the step's limits (as pt-online-schema-change's ``--chunk-time``): it starts
at 500 and moves toward ``batch_ms`` a transaction, never above ``batch`` (short locks for the service,
few round trips for the walk); with ``batch_ms`` 0 every batch is ``batch``.
A payment racing a batch either commits first (the hold is CONFIRMED, the batch skips it) or waits for the
row lock and then finds it EXPIRED. Killed mid-run, the open batch rolls back; a rerun picks up what is
left, so the end state is the same. A hold falling due during the run is left to the service.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from concertops.contract import capabilities, events
from concertops.contract.mapped_sql import flat_outbox, named
from concertops.contract.service_map import ServiceMap
from concertops.engine.action_api import Context, Outcome, Progress
from concertops.engine.interrupts import deferred
from concertops.engine.runs import now
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.clock import ZoneUnreadable, read_zone
from concertops.sources.database import database_now

FIRST_BATCH = 500


@dataclass(frozen=True)
class Targets:
    """What gather saw: the cutoff (naive, in the service's zone) and how many holds were overdue by it."""

    cutoff: datetime
    overdue: int
    clock: str  # how the cutoff was read, for the plan line


@dataclass(frozen=True)
class Decision:
    todo: int
    capped: bool
    line: str


def decide(targets: Targets, limits: catalogue.ForceExpireParams, extras: tuple[str, ...]) -> Decision:
    """The holds to expire and the plan's line: pure (targets and limits in, the decision out)."""
    if not targets.overdue:
        return Decision(0, False, f"no overdue HELD reservation ({targets.clock})")
    todo = min(targets.overdue, limits.max_rows)
    capped = todo < targets.overdue
    cap = f" (capped by --max-rows {limits.max_rows})" if capped else ""
    sizes = (
        f"batches of {limits.batch}"
        if not limits.batch_ms or first_size(limits) == limits.batch
        else f"batches sized toward {limits.batch_ms} ms each, up to {limits.batch} holds"
    )
    also = f"; also {', '.join(extras)}" if extras else "; no seat row to free on this service"
    return Decision(
        todo,
        capped,
        f"expire {todo} of {targets.overdue} overdue holds in {sizes}{cap} ({targets.clock}){also}",
    )


def first_size(limits: catalogue.ForceExpireParams) -> int:
    """The first batch: small enough to be short on any table, when the size adapts."""
    return min(limits.batch, FIRST_BATCH) if limits.batch_ms else limits.batch


def next_size(size: int, elapsed_s: float, limits: catalogue.ForceExpireParams) -> int:
    """The next batch's size: toward ``batch_ms`` a batch, at most doubling or halving, in 1…batch."""
    if not limits.batch_ms or elapsed_s <= 0:
        return size
    wanted = size * (limits.batch_ms / 1000.0) / elapsed_s
    return max(1, min(limits.batch, int(max(size / 2, min(size * 2, wanted)))))


class Walk:
    """The step's statements in the service's own names (SQLAlchemy Core: the dialect quotes and locks)."""

    def __init__(self, shape: ServiceMap) -> None:
        holds = named(shape, "reservation", "status", "expires_at", step="force-expire")
        can = capabilities.of(shape)
        self.int_keys = shape.tables["reservation"].key_type == "int"
        self.t = holds.table
        self.key, self.status, self.expires = holds["key"], holds["status"], holds["expires_at"]
        self.updated = holds["updated_at"] if "updated_at" in holds.names else None
        self.seat_col = holds["seat"] if can.seat_status else None
        # The hold's own schedule where the map names it: no look-up through the seats to lift a mark.
        self.schedule_col = holds["schedule"] if "schedule" in holds.names else None
        self.seats = named(shape, "seat", "status", "reservation") if can.seat_status else None
        self.schedules = named(shape, "schedule", "sold_out") if can.sold_out_mark else None
        self.outbox = flat_outbox(shape) if can.outbox and shape.topic("expiration") else None
        self.expiry_topic = shape.topic("expiration") or ""
        self.extras = tuple(
            what
            for what, present in (
                ("frees their seats", self.seats is not None),
                ("lifts sold-out marks", self.schedules is not None),
                ("writes each hold's expiry event to the outbox", self.outbox is not None),
            )
            if present
        )

    def overdue(self, cutoff: datetime) -> sa.ColumnElement[bool]:
        return sa.and_(
            self.status == "HELD", self.expires < sa.bindparam("cutoff", cutoff, type_=sa.DateTime)
        )

    def count(self, conn: sa.Connection, cutoff: datetime) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(self.t).where(self.overdue(cutoff))
            ).scalar_one()
        )

    def bound(self, conn: sa.Connection, after: Any, size: int, cutoff: datetime, jump: bool) -> Any:
        """The range's upper key, None when no overdue key is left. Integer keys: ``size`` keys on, from the
        next overdue key when the last range had none (``jump``: one index lookup skips a gap). String keys:
        the last of the next ``size`` HELD keys."""
        if self.int_keys:
            if after is None or jump:
                later = () if after is None else (self.key > after,)
                start = conn.execute(
                    sa.select(sa.func.min(self.key)).where(*later, self.overdue(cutoff))
                ).scalar()
                return None if start is None else int(start) + size - 1
            return int(after) + size
        held = sa.and_(self.status == "HELD", *(() if after is None else (self.key > after,)))
        high = conn.execute(
            sa.select(self.key).where(held).order_by(self.key).limit(1).offset(size - 1)
        ).scalar()
        if high is None:
            high = conn.execute(sa.select(sa.func.max(self.key)).where(held)).scalar()
        return high

    def expire(self, conn: sa.Connection, after: Any, high: Any, cutoff: datetime) -> int:
        """Inside the caller's transaction: expire the overdue holds of the key range (after, high]."""
        in_range = sa.and_(self.key <= high, *(() if after is None else (self.key > after,)))
        at = now()
        values: dict[str, Any] = {self.status.name: "EXPIRED"}
        if self.updated is not None:
            values[self.updated.name] = at
        if not self.extras:
            # Nothing else to change: one UPDATE of the range, re-checked under each row's lock.
            return int(
                conn.execute(self.t.update().where(in_range, self.overdue(cutoff)).values(values)).rowcount
            )
        wanted = [self.key, self.expires, *(c for c in (self.seat_col, self.schedule_col) if c is not None)]
        held = conn.execute(
            sa.select(*wanted).where(in_range, self.overdue(cutoff)).order_by(self.key).with_for_update()
        ).all()
        if not held:
            return 0
        keys = [r[0] for r in held]
        done = int(
            conn.execute(
                self.t.update().where(self.key.in_(keys), self.overdue(cutoff)).values(values)
            ).rowcount
        )
        if self.seats is not None:
            schedules = [r[3] for r in held] if self.schedule_col is not None else None
            self._free_seats(conn, [r[2] for r in held], keys, schedules)
        if self.outbox is not None:
            rows = [
                self.outbox.row(events.outbox_row(self.expiry_topic, r[0], events.expiration(r[0], r[1]), at))
                for r in held
            ]
            conn.execute(
                self.outbox.table.insert()
                .prefix_with("IGNORE", dialect="mysql")
                .prefix_with("OR IGNORE", dialect="sqlite"),
                rows,
            )
        return done

    def _free_seats(
        self, conn: sa.Connection, seat_ids: list[Any], holds: list[Any], schedule_ids: list[Any] | None
    ) -> None:
        seats = self.seats
        assert seats is not None
        conn.execute(
            seats.table.update()
            .where(seats["key"].in_(seat_ids), seats["status"] == "HELD", seats["reservation"].in_(holds))
            .values({seats.name("status"): "AVAILABLE", seats.name("reservation"): None})
        )
        if self.schedules is not None:
            # A seat is back on sale, so a schedule marked sold out is not any more.
            of_seats: Any = (
                sorted(set(schedule_ids))
                if schedule_ids is not None
                else sa.select(seats["schedule"]).where(seats["key"].in_(seat_ids))
            )
            schedules = self.schedules
            conn.execute(
                schedules.table.update()
                .where(schedules["key"].in_(of_seats), schedules["sold_out"].is_(True))
                .values({schedules.name("sold_out"): False})
            )


@dataclass
class ForceExpire:
    step: Step
    decision: Decision | None = None
    longest_s: float = 0.0  # the longest batch transaction of the last run (BENCHMARKS.md reads it)
    elapsed_s: float = 0.0
    batches: list[tuple[int, float]] = field(default_factory=list)  # (size, seconds) of each batch: the bench
    progress: Progress = field(default_factory=lambda: Progress("holds expired"))

    @property
    def limits(self) -> catalogue.ForceExpireParams:
        return self.step.config

    def gather(self, ctx: Context, walk: Walk) -> Targets:
        with ctx.engine.connect() as conn:
            try:
                zone = read_zone(conn, ctx.shape, "reservation")
            except ZoneUnreadable as exc:
                raise UsageError(
                    f"force-expire: {exc}: nothing expired", "fix the map's zone or tables.reservation.clock"
                ) from None
            # The database's clock, fixed for the run: a hold falling due meanwhile is left to the service.
            cutoff = database_now(conn) + zone.offset
            clock = f"the service's clock at {zone.implied or ctx.shape.zone}" + (
                f"; {zone.note}" if zone.note else ""
            )
            return Targets(cutoff, walk.count(conn, cutoff), clock)

    def prepare(self, ctx: Context) -> str:
        walk = Walk(ctx.shape)
        self.decision = decide(self.gather(ctx, walk), self.limits, walk.extras)
        return self.decision.line

    def run(self, ctx: Context) -> Outcome:
        walk = Walk(ctx.shape)
        targets = self.gather(ctx, walk)  # again: what the service expired since prepare() is not counted
        decision = decide(targets, self.limits, walk.extras)
        if not decision.todo:
            return Outcome("ok", 0, "nothing to expire: no overdue HELD reservation")
        if ctx.dry_run:
            # The first batch for real, rolled back: proves the statements and the locks; the count is exact.
            with ctx.engine.connect() as conn:
                tx = conn.begin()
                high = walk.bound(
                    conn, None, min(self.limits.batch, decision.todo), targets.cutoff, jump=True
                )
                first = 0 if high is None else walk.expire(conn, None, high, targets.cutoff)
                tx.rollback()
            return dry_run_outcome(decision.todo, self.limits, first)
        return self._act(ctx, walk, targets.cutoff, decision.todo)

    def _act(self, ctx: Context, walk: Walk, cutoff: datetime, total: int) -> Outcome:
        bar = ctx.progress("force-expire", total)
        done, size, started = 0, first_size(self.limits), time.monotonic()
        after: Any = None
        jump = True  # integer keys: find the first overdue key (and the next one after an empty range)
        self.batches = []
        try:
            with ctx.engine.connect() as conn:
                while done < total:
                    ctx.ensure_locked()  # another run may hold the lock if ours was lost
                    t0 = time.monotonic()
                    self.progress.in_flight = True
                    tx = conn.begin()
                    try:
                        high = walk.bound(conn, after, min(size, total - done), cutoff, jump)
                        expired = 0 if high is None else walk.expire(conn, after, high, cutoff)
                    except BaseException:
                        with contextlib.suppress(Exception):  # a connection cut mid-read cannot roll back
                            tx.rollback()
                        raise
                    with deferred():  # the commit and its audit row, never one without the other
                        tx.commit()
                        took = time.monotonic() - t0
                        self.progress.in_flight = False
                        if expired:
                            self.progress.committed(expired)
                            keys = {"after_key": after, "last_key": high}
                            ctx.batch_committed(self.step.id, self.progress.batches, expired, keys)
                    if high is None:
                        break  # no overdue hold after the last key: done
                    self.batches.append((size, took))
                    done += expired
                    bar.advance(expired)
                    after, jump = high, not expired
                    size = next_size(size, took, self.limits)
                    if self.limits.sleep:
                        time.sleep(self.limits.sleep)
        finally:
            bar.close()
        self.elapsed_s = time.monotonic() - started
        self.longest_s = max((s for _n, s in self.batches), default=0.0)
        what = "holds, seats freed" if walk.seats is not None else "holds"
        return expired_outcome(done, self.elapsed_s, self.longest_s, what)


def dry_run_outcome(total: int, limits: catalogue.ForceExpireParams, first: int) -> Outcome:
    """A dry run's result line: the exact count, the batches it takes, the first batch run and rolled back."""
    if limits.batch_ms and first_size(limits) < limits.batch:
        sizes = f"batches of {first_size(limits)} to {limits.batch}"
    else:
        batches = -(-total // limits.batch)
        sizes = f"{batches} batch" + ("" if batches == 1 else "es")
    return Outcome("ok", total, f"would expire {total} holds in {sizes} (first batch: {first}, rolled back)")


def expired_outcome(done: int, elapsed_s: float, longest_s: float, what: str) -> Outcome:
    """A force-expire run's result line: rows, rate and the longest batch (BENCHMARKS.md reads them)."""
    rate = done / elapsed_s if elapsed_s else 0.0
    return Outcome(
        "ok",
        done,
        f"expired {done} {what} ({rate:.0f} rows/s, longest batch {longest_s * 1000:.0f} ms)",
        changed=done > 0,
    )
