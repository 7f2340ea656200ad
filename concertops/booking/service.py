"""The booking use cases: each one is a DB transaction plus the live settings that shape it."""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import sqlalchemy as sa

from concertops.booking.db import Database
from concertops.booking.domain import outbox, payments, queue, reservations
from concertops.booking.domain.errors import DomainError
from concertops.booking.live_settings import LiveSettings
from concertops.booking.metrics import Metrics
from concertops.booking.publisher import Message, Publisher, PublishError
from concertops.contract.schema import queue_token, schedule, seat

log = logging.getLogger(__name__)
T = TypeVar("T")


class PoolExhausted(Exception):
    """No pooled DB connection within the pool timeout: the request fails with 503."""


class EventNotPublished(Exception):
    """``publish_mode=direct``: the payment is committed but its event was not acknowledged (500)."""


# MySQL/MariaDB: deadlock found (1213), lock wait timeout (1205). The transaction was rolled back whole.
_RETRYABLE = {1213, 1205}
ATTEMPTS = 3


def retry_on_deadlock(fn: Callable[..., T]) -> Callable[..., T]:
    """Run a use case again when the database rolled it back to break a deadlock (bounded, with jitter)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except sa.exc.OperationalError as exc:
                code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                if code not in _RETRYABLE or attempt == ATTEMPTS:
                    raise
                log.warning("%s: transaction rolled back (MySQL %s), retrying", fn.__name__, code)
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    return wrapper


class BookingService:
    def __init__(
        self,
        db: Database,
        cache: redis.Redis,
        publisher: Publisher,
        settings: LiveSettings,
        metrics: Metrics,
        kick_activation: Callable[[], None],
    ) -> None:
        self.db = db
        self.redis = cache
        self.publisher = publisher
        self.settings = settings
        self.metrics = metrics
        self.kick_activation = kick_activation
        self.sold_out: frozenset[int] = frozenset()

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        try:
            conn = self.db.engine.connect()
        except sa.exc.TimeoutError as exc:
            self.metrics.pool_timeouts.inc()
            raise PoolExhausted("database connection pool exhausted") from exc
        with conn:
            yield conn

    # -- queue ----------------------------------------------------------------------------------------
    @retry_on_deadlock
    def issue_token(self, user_id: int) -> dict[str, object]:
        with self.connection() as conn, conn.begin():
            token = queue.issue(conn, user_id)
        if self.settings["event_activation"]:
            self.kick_activation()
        return {"token": token, "status": "WAITING"}

    def token_status(self, token: str) -> dict[str, object]:
        with self.connection() as conn:
            return queue.status(conn, token)

    # -- reservations ---------------------------------------------------------------------------------
    @retry_on_deadlock
    def reserve(self, token: str | None, schedule_id: int, seat_no: int) -> dict[str, object]:
        if schedule_id in self.sold_out:
            # Marked sold out: refuse before taking a lock or a connection (A-2 remediation).
            self.metrics.conflicts.labels("sold_out").inc()
            raise DomainError(409, "sold_out", "the schedule is sold out", remainingSeats=0)
        ttl_ms, wait_ms = self.settings.int("lock_ttl_ms"), self.settings.int("lock_wait_ms")
        lock = None
        try:
            # As in the service the manual describes, the connection is taken first and held while
            # waiting for the seat lock: under contention waiters drain the pool.
            with self.connection() as conn, conn.begin():
                user_id = queue.require_active(conn, token)
                seat_id = conn.execute(
                    sa.select(seat.c.seat_id).where(
                        seat.c.schedule_id == schedule_id, seat.c.seat_no == seat_no
                    )
                ).scalar()
                if seat_id is None:
                    raise DomainError(
                        404, "not_found", f"seat {seat_no} of schedule {schedule_id} does not exist"
                    )
                lock = self.redis.lock(
                    f"seat:{seat_id}",
                    timeout=ttl_ms / 1000,
                    sleep=self.settings.int("lock_retry_ms") / 1000,
                )
                if not lock.acquire(blocking=True, blocking_timeout=wait_ms / 1000):
                    lock = None
                    self.metrics.lock_errors.inc()
                    log.warning(
                        "DistributedLockAcquisitionError: seat:%s not acquired in %sms", seat_id, wait_ms
                    )
                    raise DomainError(
                        409, "lock_timeout", "seat is being reserved by someone else, try another"
                    )
                try:
                    hold = reservations.take_seat(
                        conn,
                        schedule_id,
                        seat_no,
                        user_id,
                        self.settings.int("hold_ttl_s"),
                        self.settings.int("db_query_delay_ms"),
                    )
                except DomainError as refused:
                    if refused.status == 409:
                        self.metrics.conflicts.labels("seat_taken").inc()
                    raise
                event = outbox.expiration(hold.reservation_id, hold.held_expires_at)
                if self.settings["publish_mode"] == "outbox":
                    outbox.add(conn, *event)
        finally:
            if lock is not None:
                try:
                    lock.release()
                except redis.exceptions.LockError:
                    log.warning("seat lock expired before release (lock_ttl_ms too short?)")
        if self.settings["publish_mode"] == "direct":
            try:
                self.publisher.publish_direct(_message(*event))
            except PublishError as exc:
                log.error("expiration event not sent for reservation %s: %s", hold.reservation_id, exc)
        return {
            "reservationId": hold.reservation_id,
            "status": "HELD",
            "heldExpiresAt": hold.held_expires_at.isoformat(),
        }

    # -- payments -------------------------------------------------------------------------------------
    @retry_on_deadlock
    def pay(self, reservation_id: int, user_id: int) -> dict[str, object]:
        direct = self.settings["publish_mode"] == "direct"
        with self.connection() as conn, conn.begin():
            paid = payments.pay(conn, reservation_id, user_id)
            conn.execute(
                queue_token.update()
                .where(queue_token.c.user_id == user_id, queue_token.c.status == "ACTIVE")
                .values(status="EXPIRED")
            )
            event = outbox.payment_completed(
                paid.payment_id, paid.reservation_id, paid.user_id, paid.amount, paid.created_at
            )
            if not direct:
                outbox.add(conn, *event)
        if self.settings["event_activation"]:
            self.kick_activation()
        if direct:
            # The legacy path: the payment is committed; a broker that does not acknowledge turns it into
            # a 500 the user will retry (B-1), and a disconnected producer drops the event silently (B-4).
            try:
                fate = self.publisher.publish_direct(_message(*event))
            except PublishError as exc:
                raise EventNotPublished(
                    f"payment {paid.payment_id} committed, event not sent: {exc}"
                ) from exc
            if fate == "sent":
                with self.connection() as conn, conn.begin():
                    outbox.add(conn, *event, status="PUBLISHED")  # a record of what left, for the runbooks
        return {
            "paymentId": paid.payment_id,
            "reservationId": paid.reservation_id,
            "amount": paid.amount,
            "status": "CONFIRMED",
        }

    # -- schedules marked sold out (refreshed by the instance's settings loop) ---------------------------
    def refresh_sold_out(self) -> None:
        with self.connection() as conn:
            ids = conn.execute(
                sa.select(schedule.c.schedule_id).where(schedule.c.sold_out.is_(True))
            ).scalars()
            self.sold_out = frozenset(int(i) for i in ids)


def _message(topic: str, key: str, payload: dict[str, Any]) -> Message:
    return Message(
        topic=topic,
        key=key,
        value=json.dumps(payload, sort_keys=True).encode(),
        headers={"event_id": payload["event_id"]},
    )
