"""The polling fallback: every ``expiry_sweep_interval_s`` (0 = off), expire overdue holds in batches."""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa

from concertops.booking.db import Database
from concertops.booking.domain import reservations
from concertops.booking.live_settings import LiveSettings
from concertops.booking.metrics import Metrics

log = logging.getLogger(__name__)
BATCH = 500


def sweep_once(db: Database, metrics: Metrics) -> int:
    total = 0
    while True:
        with db.engine.begin() as conn:
            done = reservations.expire(conn, reservations.overdue_ids(conn, BATCH))
        total += done
        metrics.expired.labels("sweep").inc(done)
        if done < BATCH:
            return total


def run(db: Database, settings: LiveSettings, metrics: Metrics, stop: threading.Event) -> None:
    last = time.monotonic()
    while not stop.wait(0.2):
        interval = settings.int("expiry_sweep_interval_s")
        if interval <= 0 or time.monotonic() - last < interval:
            continue
        last = time.monotonic()
        try:
            if expired := sweep_once(db, metrics):
                log.info("sweep expired %d overdue holds", expired)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("expiry sweep failed: %s", type(exc).__name__)
