"""Events as one service writes them on its topics: the service map's ``kafka.envelope``.

``flat``: the reference service's JSON payload with its own ``event_id`` (``concertops.contract.events``).
``step10``: ``{"eventId": "evt_<ms>", "eventType": <topic>, "eventTime": ISO, "payload": {...}}``, as the
production service's producer writes it. Its ``eventId`` is not unique (milliseconds), so an event is told
apart by what its payload names: a ``payment.completed`` by its ``paymentId``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from confluent_kafka import Message

# The payload field that names the payment a ``payment.completed`` message is about, per envelope.
_PAYMENT_FIELD = {"flat": "payment_id", "step10": "paymentId"}


def payment_of(envelope: str) -> Callable[[Message], str | None]:
    """A topic reader's ``identify``: the payment a ``payment.completed`` message is about."""
    field = _PAYMENT_FIELD[envelope]

    def identify(message: Message) -> str | None:
        try:
            body = json.loads(message.value() or b"")
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        payload = body.get("payload") if envelope == "step10" else body
        found = payload.get(field) if isinstance(payload, dict) else None
        return None if found is None else str(found)

    return identify


def js_number(value: Any) -> Any:
    """A number as the service's ``JSON.stringify`` writes it: JavaScript has one number type, and an
    integral one is written without a fraction (``50000``, never ``50000.0``); others as the shortest
    decimal that reads back the same, which Python's float repr also is. Anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int):
        return value
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def step10_payment_completed(topic: str, payment: dict[str, Any], at: datetime) -> bytes:
    """A ``payment.completed`` message in the step10 envelope, for a payment row in logical names
    (key, user, reservation, seat, amount)."""
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    millis = int(at.timestamp() * 1000)
    amount = payment["amount"]
    body = {
        "eventId": f"evt_{millis}",
        "eventType": topic,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
        "payload": {
            "paymentId": str(payment["key"]),
            "userId": str(payment["user"]),
            "reservationId": str(payment["reservation"]),
            "seatId": None if payment.get("seat") is None else str(payment["seat"]),
            "amount": js_number(amount),
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()
