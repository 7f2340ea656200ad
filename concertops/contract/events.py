"""Deterministic event ids: one (topic, aggregate) is always the same event, so re-publishing never
creates a new one and consumers can deduplicate by id."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from concertops.contract.names import TOPIC_EXPIRATION, TOPIC_PAYMENT_COMPLETED

_NAMESPACE = uuid.UUID("6f1c1f8e-3b0e-4e59-9a4f-0c6d2f6a5b10")


def event_id(topic: str, aggregate_id: int | str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{topic}:{aggregate_id}"))


def payment_completed(
    payment_id: int, reservation_id: int, user_id: int, amount: int, created_at: datetime
) -> dict[str, Any]:
    """The ``payment.completed`` payload; the same payment always gives the same event (and event id), so an
    event rebuilt from the payment table later (B-1, B-4) is the one consumers may already have seen."""
    return {
        "event_id": event_id(TOPIC_PAYMENT_COMPLETED, payment_id),
        "payment_id": payment_id,
        "reservation_id": reservation_id,
        "user_id": user_id,
        "amount": amount,
        "created_at": created_at.isoformat(),
    }


def expiration(reservation_id: int, expires_at: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id(TOPIC_EXPIRATION, reservation_id),
        "reservation_id": reservation_id,
        "expires_at": expires_at.isoformat(),
    }


def outbox_row(topic: str, aggregate_id: int | str, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    """An ``outbox_event`` row, PENDING, for ``payload`` (which carries its deterministic ``event_id``)."""
    return {
        "event_id": payload["event_id"],
        "topic": topic,
        "aggregate_id": str(aggregate_id),
        "payload": json.dumps(payload, sort_keys=True),
        "status": "PENDING",
        "attempts": 0,
        "created_at": at,
    }
