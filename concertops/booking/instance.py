"""One backend instance: its pool, Redis, producer, workers and HTTP server, wired together."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa

from concertops.booking.db import Database
from concertops.booking.live_settings import POLL_INTERVAL_S, LiveSettings
from concertops.booking.metrics import Metrics
from concertops.booking.publisher import Publisher
from concertops.booking.service import BookingService
from concertops.booking.workers import activator, expiry_consumer, notifier, relay, sweeper
from concertops.contract import settings as specs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    port: int
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str
    host: str = "127.0.0.1"


class Instance:
    def __init__(self, config: InstanceConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.settings = LiveSettings(self.metrics, on_change=self._setting_changed)
        self.db = Database(config.database_url, self.settings.int("db_pool_size"), self.metrics)
        self.redis = redis.Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.publisher = Publisher(config.kafka_bootstrap_servers, self.metrics, self.settings)
        self.activator = activator.Activator(self.db, self.redis, self.settings, self.metrics)
        self.service = BookingService(
            self.db, self.redis, self.publisher, self.settings, self.metrics, self.activator.kick
        )
        self.expiry = expiry_consumer.ExpiryConsumer(
            self.redis, self.db, self.publisher, self.settings, self.metrics
        )
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def _setting_changed(self, name: str, value: specs.Value) -> None:
        if name == "db_pool_size" and isinstance(value, int):
            self.db.resize(value)

    def _refresh(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_INTERVAL_S):
            try:
                self.settings.refresh(self.db.engine)
                self.service.refresh_sold_out()
            except Exception as exc:  # the database may be away for a while; keep the last values
                log.warning("settings refresh failed: %s", type(exc).__name__)

    def start_workers(self) -> None:
        self.settings.refresh(self.db.engine)  # start with the settings in force, not the defaults
        jobs: dict[str, Callable[[threading.Event], Any]] = {
            "settings": self._refresh,
            "producer-poll": self.publisher.run_poll,
            "producer-health": self.publisher.run_health,
            "activator": self.activator.run,
            "relay": lambda stop: relay.run(self.db, self.publisher, self.metrics, stop),
            "expiry-consumer": self.expiry.run,
            "sweeper": lambda stop: sweeper.run(self.db, self.settings, self.metrics, stop),
            "notifier": lambda stop: notifier.run(self.redis, self.publisher, self.db, self.metrics, stop),
        }
        for name, job in jobs.items():
            thread = threading.Thread(target=self._guard, args=(name, job), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _guard(self, name: str, job: Callable[[threading.Event], Any]) -> None:
        """Restart a crashed worker after a pause rather than lose it silently."""
        while not self.stop.is_set():
            try:
                job(self.stop)
            except Exception:
                log.exception("worker %s crashed; restarting in 1 s", name)
                self.stop.wait(1.0)

    def stop_workers(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.publisher.close()
        self.db.close()

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        import anyio.to_thread

        # 50 users waiting on seat locks need more than the default 40 worker threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 200
        self.start_workers()
        yield
        self.stop_workers()

    def health(self) -> dict[str, str]:
        checks = {
            "database": "ok",
            "redis": "ok",
            "kafka": "connected" if self.publisher.connected else "disconnected",
            "instance": self.config.name,
        }
        try:
            with self.db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            checks["database"] = type(exc).__name__
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            checks["redis"] = type(exc).__name__
        return checks


def serve(config: InstanceConfig) -> None:
    import uvicorn

    from concertops.booking.api import create_app

    instance = Instance(config)
    uvicorn.run(
        create_app(instance),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
