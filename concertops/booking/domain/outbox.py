"""Events as rows of ``outbox_event``: written in the same transaction as the change they announce."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from concertops.booking.domain.clock import utcnow
from concertops.contract import events
from concertops.contract.names import TOPIC_EXPIRATION, TOPIC_PAYMENT_COMPLETED
from concertops.contract.schema import outbox_event


def payment_completed(
    payment_id: int, reservation_id: int, user_id: int, amount: int, created_at: datetime
) -> tuple[str, str, dict[str, Any]]:
    """(topic, aggregate id, payload) of a payment's event; the same payment always gives the same event."""
    payload = events.payment_completed(payment_id, reservation_id, user_id, amount, created_at)
    return TOPIC_PAYMENT_COMPLETED, str(payment_id), payload


def expiration(reservation_id: int, expires_at: datetime) -> tuple[str, str, dict[str, Any]]:
    return TOPIC_EXPIRATION, str(reservation_id), events.expiration(reservation_id, expires_at)


def add(
    conn: sa.Connection, topic: str, aggregate_id: str, payload: dict[str, Any], status: str = "PENDING"
) -> None:
    now = utcnow()
    conn.execute(
        outbox_event.insert().values(
            event_id=payload["event_id"],
            topic=topic,
            aggregate_id=aggregate_id,
            payload=json.dumps(payload, sort_keys=True),
            status=status,
            attempts=0,
            created_at=now,
            published_at=now if status == "PUBLISHED" else None,
        )
    )
