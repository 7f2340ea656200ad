"""Seats, holds and their expiry. A seat row is the single source of who holds it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from concertops.booking.domain.clock import utcnow
from concertops.booking.domain.errors import DomainError, not_found
from concertops.booking.domain.rows import new_id
from concertops.contract.schema import reservation, schedule, seat


@dataclass(frozen=True)
class Hold:
    reservation_id: int
    seat_id: int
    held_expires_at: datetime


def remaining_seats(conn: sa.Connection, schedule_id: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(seat)
            .where(seat.c.schedule_id == schedule_id, seat.c.status == "AVAILABLE")
        ).scalar_one()
    )


def take_seat(
    conn: sa.Connection, schedule_id: int, seat_no: int, user_id: int, hold_ttl_s: int, delay_ms: int = 0
) -> Hold:
    """Hold one seat inside the caller's transaction, or refuse with 409 and the seats still free.

    ``delay_ms`` (fault injection) makes the seat query as slow as on a loaded database.
    """
    if delay_ms:
        if conn.dialect.name == "sqlite":
            time.sleep(delay_ms / 1000)
        else:
            conn.execute(sa.text("SELECT SLEEP(:s)"), {"s": delay_ms / 1000})
    row = conn.execute(
        sa.select(seat.c.seat_id, seat.c.status)
        .where(seat.c.schedule_id == schedule_id, seat.c.seat_no == seat_no)
        .with_for_update()
    ).first()
    if row is None:
        raise not_found("seat", f"{seat_no} of schedule {schedule_id}")
    if row.status != "AVAILABLE":
        raise DomainError(
            409, "seat_taken", "seat already reserved", remainingSeats=remaining_seats(conn, schedule_id)
        )
    now = utcnow()
    expires = now + timedelta(seconds=hold_ttl_s)
    reservation_id = new_id(
        conn.execute(
            reservation.insert().values(
                user_id=user_id,
                schedule_id=schedule_id,
                seat_no=seat_no,
                seat_id=row.seat_id,
                status="HELD",
                held_expires_at=expires,
                created_at=now,
                updated_at=now,
            )
        )
    )
    taken = conn.execute(
        seat.update()
        .where(seat.c.seat_id == row.seat_id, seat.c.status == "AVAILABLE")
        .values(status="HELD", reservation_id=reservation_id)
    ).rowcount
    if taken != 1:  # only without row locks (SQLite serialises writers, so this is a safety net)
        raise DomainError(
            409, "seat_taken", "seat already reserved", remainingSeats=remaining_seats(conn, schedule_id)
        )
    return Hold(int(reservation_id), int(row.seat_id), expires)


def still_held(conn: sa.Connection, reservation_id: int) -> bool:
    return (
        conn.execute(
            sa.select(reservation.c.status).where(reservation.c.reservation_id == reservation_id)
        ).scalar()
        == "HELD"
    )


def expire(conn: sa.Connection, reservation_ids: list[int]) -> int:
    """Expire those of ``reservation_ids`` that are still HELD and overdue *now*, and free their seats.

    The condition is re-checked in the UPDATE itself, so a hold paid for a moment ago is never released.
    """
    if not reservation_ids:
        return 0
    now = utcnow()
    done = conn.execute(
        reservation.update()
        .where(
            reservation.c.reservation_id.in_(reservation_ids),
            reservation.c.status == "HELD",
            reservation.c.held_expires_at < now,
        )
        .values(status="EXPIRED", updated_at=now)
    ).rowcount
    if done:
        expired_now = sa.select(reservation.c.reservation_id).where(
            reservation.c.reservation_id.in_(reservation_ids), reservation.c.status == "EXPIRED"
        )
        freed_schedules = sa.select(seat.c.schedule_id).where(
            seat.c.reservation_id.in_(expired_now), seat.c.status == "HELD"
        )
        # A seat is back on sale, so a schedule marked sold out (A-2's remediation) is not any more.
        conn.execute(
            schedule.update()
            .where(schedule.c.schedule_id.in_(freed_schedules), schedule.c.sold_out.is_(True))
            .values(sold_out=False)
        )
        conn.execute(
            seat.update()
            .where(seat.c.reservation_id.in_(expired_now), seat.c.status == "HELD")
            .values(status="AVAILABLE", reservation_id=None)
        )
    return int(done)


def overdue_ids(conn: sa.Connection, limit: int) -> list[int]:
    """Up to ``limit`` overdue holds, oldest first; rows another worker has locked are skipped (MySQL)."""
    query = (
        sa.select(reservation.c.reservation_id)
        .where(reservation.c.status == "HELD", reservation.c.held_expires_at < utcnow())
        .order_by(reservation.c.held_expires_at)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    return [int(i) for i in conn.execute(query).scalars()]
