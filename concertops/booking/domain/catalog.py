"""Concerts, schedules and seats to browse; concerts and schedules are cached in Redis."""

from __future__ import annotations

import sqlalchemy as sa

from concertops.booking.domain.errors import not_found
from concertops.contract.schema import concert, schedule, seat


def concerts(conn: sa.Connection) -> list[dict[str, object]]:
    rows = conn.execute(sa.select(concert.c.concert_id, concert.c.title).order_by(concert.c.concert_id))
    return [{"concertId": r.concert_id, "title": r.title} for r in rows]


def schedules(conn: sa.Connection, concert_id: int) -> list[dict[str, object]]:
    rows = conn.execute(
        sa.select(schedule).where(schedule.c.concert_id == concert_id).order_by(schedule.c.schedule_id)
    ).all()
    if (
        not rows
        and conn.execute(sa.select(concert.c.concert_id).where(concert.c.concert_id == concert_id)).first()
        is None
    ):
        raise not_found("concert", concert_id)
    return [
        {"scheduleId": r.schedule_id, "startsAt": r.starts_at.isoformat(), "soldOut": bool(r.sold_out)}
        for r in rows
    ]


def seats(conn: sa.Connection, schedule_id: int) -> list[dict[str, object]]:
    rows = conn.execute(
        sa.select(seat.c.seat_no, seat.c.status, seat.c.price)
        .where(seat.c.schedule_id == schedule_id)
        .order_by(seat.c.seat_no)
    ).all()
    if not rows:
        raise not_found("schedule", schedule_id)
    return [{"seatNo": r.seat_no, "status": r.status, "price": r.price} for r in rows]
