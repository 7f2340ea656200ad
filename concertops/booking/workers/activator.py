"""Queue activation: polling every ``queue_activation_interval_s``, and at once on a kick when
``event_activation`` is on. One instance activates at a time (a Redis lock); every instance reports the
queue's size."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis
import sqlalchemy as sa

from concertops.booking.db import Database
from concertops.booking.domain import queue
from concertops.booking.live_settings import LiveSettings
from concertops.booking.metrics import Metrics
from concertops.contract import names

log = logging.getLogger(__name__)


class Activator:
    def __init__(self, db: Database, cache: redis.Redis, settings: LiveSettings, metrics: Metrics) -> None:
        self.db, self.redis, self.settings, self.metrics = db, cache, settings, metrics
        self._kicked = threading.Event()

    def kick(self) -> None:
        self._kicked.set()

    def run(self, stop: threading.Event) -> None:
        last = 0.0
        while not stop.is_set():
            # Short waits so a new interval applies at once, and a kick is served within 50 ms.
            kicked = self._kicked.wait(0.05)
            due = time.monotonic() - last >= self.settings.int("queue_activation_interval_s")
            if not (due or (kicked and self.settings["event_activation"])):
                continue
            self._kicked.clear()
            last = time.monotonic()
            try:
                self.run_once()
            except (sa.exc.SQLAlchemyError, redis.RedisError) as exc:
                log.warning("queue activation failed: %s", type(exc).__name__)

    def run_once(self) -> queue.ActivationRun | None:
        lock = self.redis.lock(names.ACTIVATOR_LOCK, timeout=30)
        if not lock.acquire(blocking=False):
            return None
        started = time.perf_counter()
        try:
            with self.db.engine.begin() as conn:
                result = queue.activate(
                    conn, self.settings.int("max_active_tokens"), self.settings.int("active_token_ttl_s")
                )
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        self.metrics.activation_duration.observe(time.perf_counter() - started)
        self.metrics.queue_waiting.set(result.waiting)
        self.metrics.queue_active.set(result.active)
        self.metrics.queue_oldest_age.set(result.oldest_waiting_age_s)
        return result
