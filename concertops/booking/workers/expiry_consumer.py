"""Consumer of ``reservation.expiration``, in the mode ``expiry_consumer_mode`` says.

* ``blocking`` (legacy): the offset is committed on receipt, then the handler sleeps until the hold is
  due and only logs errors; a restart loses the sleeping message, a burst piles up behind it (B-2).
* ``reschedule``: a message not yet due is re-published for later and committed at once; a due one is
  expired; a failure goes to ``reservation.expiration.dlq``. Nothing sleeps in the handler.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

import redis

from concertops.booking.db import Database
from concertops.booking.domain import reservations
from concertops.booking.domain.clock import utcnow
from concertops.booking.live_settings import LiveSettings
from concertops.booking.metrics import Metrics
from concertops.booking.publisher import DELIVERY_TIMEOUT_S, Message, Publisher, PublishError
from concertops.booking.workers.consuming import LeasedConsumer
from concertops.contract.names import GROUP_EXPIRY, TOPIC_EXPIRATION, TOPIC_EXPIRATION_DLQ

log = logging.getLogger(__name__)
# Pause after re-publishing a message that is not due, so a topic of future holds does not spin.
NOT_DUE_PAUSE_S = 0.05
SEND_TIMEOUT_S = DELIVERY_TIMEOUT_S + 5.0


class ExpiryConsumer:
    def __init__(
        self,
        cache: redis.Redis,
        db: Database,
        publisher: Publisher,
        settings: LiveSettings,
        metrics: Metrics,
    ) -> None:
        self.cache, self.db, self.publisher = cache, db, publisher
        self.settings, self.metrics = settings, metrics

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            mode = str(self.settings["expiry_consumer_mode"])
            consumer = LeasedConsumer(
                self.cache, self.publisher, self.metrics, GROUP_EXPIRY, TOPIC_EXPIRATION
            )
            try:
                # A mode change starts a new consumer, as a deploy of the other handler would.
                while not stop.is_set() and self.settings["expiry_consumer_mode"] == mode:
                    msg = consumer.poll(0.2)
                    if msg is None:
                        continue
                    if mode == "blocking":
                        self._handle_blocking(consumer, msg, stop)
                    else:
                        self._handle_reschedule(consumer, msg, stop)
            finally:
                consumer.close()

    def _handle_blocking(self, consumer: LeasedConsumer, msg: Any, stop: threading.Event) -> None:
        consumer.commit(msg)  # on receipt, before the work: what makes an interrupted sleep a lost expiry
        try:
            reservation_id, due = _parse(msg.value())
            # One second past due: expire() wants the hold strictly overdue at whole-second resolution.
            wait = (due - utcnow()).total_seconds() + 1
            self.metrics.expiry_in_flight.inc()
            try:
                if wait > 0 and self._interrupted(wait, stop):
                    return  # shutting down or redeployed: the message is committed, so this expiry is lost
            finally:
                self.metrics.expiry_in_flight.dec()
            self._expire(reservation_id, "consumer")
        except Exception as exc:  # the legacy handler only logs
            log.error("expiry handler failed: %s", exc)

    def _interrupted(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep ``seconds`` unless the instance stops or the handler is switched (as a deploy of the other
        handler would restart the consumer); True when cut short."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(min(left, 0.5)) or self.settings["expiry_consumer_mode"] != "blocking":
                return True
        return False

    def _handle_reschedule(self, consumer: LeasedConsumer, msg: Any, stop: threading.Event) -> None:
        try:
            reservation_id, due = _parse(msg.value())
        except (ValueError, KeyError, TypeError) as exc:
            self._dead_letter(msg, exc)
            consumer.commit(msg)
            return
        try:
            if not _overdue(due):
                if not self._still_held(reservation_id):
                    consumer.commit(msg)  # paid or released meanwhile: nothing left to expire
                    return
                # Not due: put it back on the topic for later, then let this copy go.
                self.publisher.send(
                    Message(TOPIC_EXPIRATION, str(reservation_id), msg.value(), _headers(msg)), SEND_TIMEOUT_S
                )
            else:
                self._expire(reservation_id, "consumer")
        except PublishError as exc:
            # The broker is away: keep the message and try again, rather than dead-letter a healthy event.
            log.warning(
                "expiry message for reservation %s not re-published, retrying: %s", reservation_id, exc
            )
            consumer.seek_back(msg)
            stop.wait(1.0)
            return
        except Exception as exc:  # the DB refused: the DLQ keeps it for a replay
            self._dead_letter(msg, exc)
        consumer.commit(msg)
        if not _overdue(due):
            stop.wait(NOT_DUE_PAUSE_S)

    def _still_held(self, reservation_id: int) -> bool:
        with self.db.engine.connect() as conn:
            return reservations.still_held(conn, reservation_id)

    def _expire(self, reservation_id: int, via: str) -> None:
        with self.db.engine.begin() as conn:
            done = reservations.expire(conn, [reservation_id])
        self.metrics.expired.labels(via).inc(done)

    def _dead_letter(self, msg: Any, exc: Exception) -> None:
        headers = {**_headers(msg), "error": str(exc)[:300], "original_offset": str(msg.offset())}
        try:
            self.publisher.send(
                Message(TOPIC_EXPIRATION_DLQ, (msg.key() or b"").decode(), msg.value() or b"", headers),
                SEND_TIMEOUT_S,
            )
            self.metrics.expiry_dlq.inc()
            log.warning("expiry message sent to %s: %s", TOPIC_EXPIRATION_DLQ, exc)
        except Exception as dlq_exc:
            log.error("expiry message lost: DLQ send failed too: %s (%s)", dlq_exc, exc)


def _overdue(due: datetime) -> bool:
    """Strictly past due, as ``reservations.expire`` requires: a message handled within its due second is
    not yet expirable, and expiring it then would update nothing and lose the message."""
    return due < utcnow()


def _parse(raw: bytes | None) -> tuple[int, datetime]:
    body = json.loads(raw or b"")
    return int(body["reservation_id"]), datetime.fromisoformat(body["expires_at"])


def _headers(msg: Any) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in (msg.headers() or [])}
