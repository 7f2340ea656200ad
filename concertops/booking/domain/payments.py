"""Paying for a held seat. Paying twice never charges twice: the reservation row is locked and checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from concertops.booking.domain.clock import utcnow
from concertops.booking.domain.errors import DomainError, not_found
from concertops.booking.domain.rows import new_id
from concertops.contract.schema import payment, reservation, seat


@dataclass(frozen=True)
class Payment:
    payment_id: int
    reservation_id: int
    user_id: int
    amount: int
    created_at: datetime


def pay(conn: sa.Connection, reservation_id: int, user_id: int) -> Payment:
    """Inside the caller's transaction: record the payment and confirm the reservation."""
    row = conn.execute(
        sa.select(reservation).where(reservation.c.reservation_id == reservation_id).with_for_update()
    ).first()
    if row is None:
        raise not_found("reservation", reservation_id)
    if row.user_id != user_id:
        raise DomainError(403, "not_your_reservation", "the reservation belongs to another user")
    if row.status == "CONFIRMED":
        raise DomainError(409, "already_paid", "the reservation is already paid")
    now = utcnow()
    if row.status != "HELD" or (row.held_expires_at is not None and row.held_expires_at < now):
        raise DomainError(409, "not_held", f"the reservation is {row.status} and its hold has ended")
    price = conn.execute(sa.select(seat.c.price).where(seat.c.seat_id == row.seat_id)).scalar_one()
    payment_id = new_id(
        conn.execute(
            payment.insert().values(
                reservation_id=reservation_id, user_id=user_id, amount=price, created_at=now
            )
        )
    )
    conn.execute(
        reservation.update()
        .where(reservation.c.reservation_id == reservation_id)
        .values(status="CONFIRMED", updated_at=now)
    )
    conn.execute(seat.update().where(seat.c.seat_id == row.seat_id).values(status="SOLD"))
    return Payment(int(payment_id), reservation_id, user_id, int(price), now)
