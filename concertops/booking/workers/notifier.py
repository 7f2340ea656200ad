"""Consumer of ``payment.completed``: records, once per event id, that the user was notified."""

from __future__ import annotations

import json
import logging
import threading

import redis
import sqlalchemy as sa

from concertops.booking.db import Database
from concertops.booking.domain.clock import utcnow
from concertops.booking.metrics import Metrics
from concertops.booking.publisher import Publisher
from concertops.booking.workers.consuming import LeasedConsumer
from concertops.contract.names import GROUP_NOTIFICATION, TOPIC_PAYMENT_COMPLETED
from concertops.contract.schema import notification

log = logging.getLogger(__name__)


def handle(db: Database, metrics: Metrics, raw: bytes) -> bool:
    """True when this event was new; a duplicate is counted and otherwise ignored."""
    body = json.loads(raw)
    try:
        with db.engine.begin() as conn:
            conn.execute(
                notification.insert().values(
                    event_id=body["event_id"],
                    payment_id=body["payment_id"],
                    user_id=body["user_id"],
                    created_at=utcnow(),
                )
            )
    except sa.exc.IntegrityError:
        metrics.notification_duplicates.inc()
        return False
    metrics.notifications.inc()
    return True


def run(
    cache: redis.Redis, publisher: Publisher, db: Database, metrics: Metrics, stop: threading.Event
) -> None:
    consumer = LeasedConsumer(cache, publisher, metrics, GROUP_NOTIFICATION, TOPIC_PAYMENT_COMPLETED)
    try:
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            try:
                handle(db, metrics, msg.value())
            except (ValueError, KeyError) as exc:
                log.error("unreadable payment event at offset %s skipped: %s", msg.offset(), exc)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("notification not recorded, will retry: %s", type(exc).__name__)
                consumer.seek_back(msg)  # not committed: read it again
                stop.wait(1.0)
                continue
            consumer.commit(msg)
    finally:
        consumer.close()
