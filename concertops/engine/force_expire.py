"""B-2: expire overdue HELD reservations in small committed batches (pt-archiver style), not one UPDATE over
the whole table as the manual writes it.

Each batch is one short transaction over a range of ``batch`` primary keys (a walk from the lowest to the
highest overdue key; an empty range jumps to the next overdue key through the ``(status, held_expires_at)``
index): lock the overdue holds in it, expire only those still HELD and still overdue at that moment, free
their seats, lift a sold-out mark, and write each hold's expiry event to the outbox if it is not there
(deterministic id: never a second event). Every statement reaches its rows by primary key.
A payment racing a batch either commits first (the hold is CONFIRMED, the batch skips it) or waits for the
batch's row lock and then finds the hold EXPIRED. Killed mid-run, the open batch rolls back; a rerun picks up
what is left, so the end state is the same.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from concertops.contract import events
from concertops.contract.names import TOPIC_EXPIRATION
from concertops.contract.schema import outbox_event, reservation, schedule, seat
from concertops.engine.action_api import Context, Outcome, Progress
from concertops.engine.interrupts import deferred
from concertops.engine.runs import now
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import database_now

_OVERDUE = sa.and_(reservation.c.status == "HELD", reservation.c.held_expires_at < sa.bindparam("cutoff"))


@dataclass(frozen=True)
class Limits:
    batch: int
    max_rows: int
    sleep_s: float

    @classmethod
    def of(cls, step: Step) -> Limits:
        config: catalogue.ForceExpireParams = step.config
        return cls(config.batch, config.max_rows, config.sleep)


def overdue_count(conn: sa.Connection, cutoff: object) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(reservation).where(_OVERDUE), {"cutoff": cutoff}
        ).scalar_one()
    )


def key_range(conn: sa.Connection, cutoff: object) -> tuple[int | None, int | None]:
    low, high = conn.execute(
        sa.select(sa.func.min(reservation.c.reservation_id), sa.func.max(reservation.c.reservation_id)).where(
            _OVERDUE
        ),
        {"cutoff": cutoff},
    ).one()
    return low, high


def expire_range(conn: sa.Connection, first: int, last: int, cutoff: object, limit: int) -> tuple[int, int]:
    """Inside the caller's transaction: expire the holds with keys ``first``…``last`` that are still HELD and
    overdue (at most ``limit``); (expired, overdue found). Every statement reaches rows by primary key."""
    held = conn.execute(
        sa.select(
            reservation.c.reservation_id,
            reservation.c.held_expires_at,
            reservation.c.seat_id,
            reservation.c.schedule_id,
        )
        .where(reservation.c.reservation_id.between(first, last), _OVERDUE)
        .order_by(reservation.c.reservation_id)
        .limit(limit)
        .with_for_update(),
        {"cutoff": cutoff},
    ).all()
    if not held:
        return 0, 0
    due = [r.reservation_id for r in held]
    at = now()
    done = conn.execute(
        reservation.update()
        .where(reservation.c.reservation_id.in_(due), _OVERDUE)
        .values(status="EXPIRED", updated_at=at),
        {"cutoff": cutoff},
    ).rowcount
    conn.execute(
        seat.update()
        .where(
            seat.c.seat_id.in_([r.seat_id for r in held]),
            seat.c.status == "HELD",
            seat.c.reservation_id.in_(due),
        )
        .values(status="AVAILABLE", reservation_id=None)
    )
    # A seat is back on sale, so a schedule marked sold out is not any more.
    conn.execute(
        schedule.update()
        .where(schedule.c.schedule_id.in_({r.schedule_id for r in held}), schedule.c.sold_out.is_(True))
        .values(sold_out=False)
    )
    # The expiry event, if the hold's own never made it to the outbox (same id: never a second event).
    rows = [
        events.outbox_row(
            TOPIC_EXPIRATION, r.reservation_id, events.expiration(r.reservation_id, r.held_expires_at), at
        )
        for r in held
    ]
    conn.execute(
        outbox_event.insert()
        .prefix_with("IGNORE", dialect="mysql")
        .prefix_with("OR IGNORE", dialect="sqlite"),
        rows,
    )
    return int(done), len(held)


def next_overdue(conn: sa.Connection, after: int, cutoff: object) -> int | None:
    """The lowest overdue key from ``after`` on: skips a gap of keys in one index lookup."""
    found = conn.execute(
        sa.select(sa.func.min(reservation.c.reservation_id)).where(
            reservation.c.reservation_id >= after, _OVERDUE
        ),
        {"cutoff": cutoff},
    ).scalar()
    return None if found is None else int(found)


@dataclass
class ForceExpire:
    step: Step
    total: int = 0
    longest_s: float = 0.0  # the longest batch transaction of the last run (BENCHMARKS.md reads it)
    elapsed_s: float = 0.0
    progress: Progress = field(default_factory=lambda: Progress("holds expired"))

    def prepare(self, ctx: Context) -> str:
        limits = Limits.of(self.step)  # ranges were checked by the step's model (page and options)
        with ctx.engine.connect() as conn:
            self.total = overdue_count(conn, database_now(conn))
        if not self.total:
            return "no overdue HELD reservation"
        todo = min(self.total, limits.max_rows)
        cap = f" (capped by --max-rows {limits.max_rows})" if todo < self.total else ""
        return f"expire {todo} of {self.total} overdue holds in batches of {limits.batch}{cap}"

    def run(self, ctx: Context) -> Outcome:
        limits = Limits.of(self.step)
        with ctx.engine.connect() as conn:
            # The database's clock, fixed for the run: a hold falling due meanwhile is left to the service.
            cutoff = database_now(conn)
            total = min(overdue_count(conn, cutoff), limits.max_rows)
            low, high = key_range(conn, cutoff)
        if not total or low is None or high is None:
            return Outcome("ok", 0, "nothing to expire: no overdue HELD reservation")
        if ctx.dry_run:
            # The first batch for real, rolled back: proves the statements and the locks; the count is exact.
            with ctx.engine.connect() as conn:
                tx = conn.begin()
                first, _found = expire_range(conn, low, low + limits.batch - 1, cutoff, limits.batch)
                tx.rollback()
            return dry_run_outcome(total, limits.batch, first)
        bar = ctx.progress("force-expire", total)
        done, longest, started = 0, 0.0, time.monotonic()
        position: int | None = low
        try:
            with ctx.engine.connect() as conn:
                # A walk of the primary key, one committed transaction per range of ``batch`` keys.
                while done < total and position is not None and position <= high:
                    ctx.ensure_locked()  # another run may hold the lock if ours was lost
                    t0 = time.monotonic()
                    last = position + limits.batch - 1
                    self.progress.in_flight = True
                    tx = conn.begin()
                    try:
                        expired, found = expire_range(conn, position, last, cutoff, total - done)
                    except BaseException:
                        with contextlib.suppress(Exception):  # a connection cut mid-read cannot roll back
                            tx.rollback()
                        raise
                    with deferred():  # the commit and its audit row, never one without the other
                        tx.commit()
                        longest = max(longest, time.monotonic() - t0)
                        self.progress.in_flight = False
                        if expired:
                            self.progress.committed(expired)
                            keys = {"first_key": position, "last_key": last}
                            ctx.batch_committed(self.step.id, self.progress.batches, expired, keys)
                    done += expired
                    bar.advance(expired)
                    if found:
                        position = last + 1
                    else:
                        with conn.begin():  # a read of its own: the next batch begins its own transaction
                            position = next_overdue(conn, last + 1, cutoff)
                    if limits.sleep_s and found:
                        time.sleep(limits.sleep_s)
        finally:
            bar.close()
        self.longest_s, self.elapsed_s = longest, time.monotonic() - started
        return expired_outcome(done, self.elapsed_s, longest, "holds, seats freed")


def dry_run_outcome(total: int, batch: int, first: int) -> Outcome:
    """A dry run's result line: the exact count, the batches it takes, the first batch run and rolled back."""
    batches = -(-total // batch)
    plural = "batch" if batches == 1 else "batches"
    return Outcome(
        "ok", total, f"would expire {total} holds in {batches} {plural} (first batch: {first}, rolled back)"
    )


def expired_outcome(done: int, elapsed_s: float, longest_s: float, what: str) -> Outcome:
    """A force-expire run's result line: rows, rate and the longest batch (BENCHMARKS.md reads them)."""
    rate = done / elapsed_s if elapsed_s else 0.0
    return Outcome(
        "ok",
        done,
        f"expired {done} {what} ({rate:.0f} rows/s, longest batch {longest_s * 1000:.0f} ms)",
        changed=done > 0,
    )
