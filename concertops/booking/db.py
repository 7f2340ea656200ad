"""The instance's database engine, whose pool can be resized live (``db_pool_size``) without a restart."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from concertops.booking.metrics import Metrics

# How long a request waits for a pooled connection before it fails with 503 (the pool-exhaustion symptom).
POOL_TIMEOUT_S = 5.0


def make_engine(url: str, pool_size: int, pool_timeout: float = POOL_TIMEOUT_S) -> sa.Engine:
    """An engine that keeps NOW() in UTC on MySQL and serialises writers explicitly on SQLite."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let "begin" below issue BEGIN IMMEDIATE
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA busy_timeout=30000")

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # READ COMMITTED: each statement sees what is committed now, so a 409 reports the seats free at that
    # moment (not the transaction's first snapshot), and no gap locks widen contention under load.
    return sa.create_engine(
        url,
        isolation_level="READ COMMITTED",
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=3600,
        connect_args={"connect_timeout": 10, "init_command": "SET time_zone = '+00:00'"},
    )


class Database:
    """Hands out the current engine; ``resize`` swaps in a new pool and lets the old one drain."""

    def __init__(self, url: str, pool_size: int, metrics: Metrics) -> None:
        self.url = url
        self.metrics = metrics
        self._lock = threading.Lock()
        self._draining: list[sa.Engine] = []
        self.pool_size = pool_size
        self.engine = make_engine(url, pool_size)
        metrics.pool_size.set(pool_size)
        metrics.pool_active.set_function(self.checked_out)

    def checked_out(self) -> float:
        with self._lock:
            self._draining = [e for e in self._draining if _checked_out(e) > 0]
            return float(_checked_out(self.engine) + sum(_checked_out(e) for e in self._draining))

    def resize(self, pool_size: int) -> bool:
        with self._lock:
            if pool_size == self.pool_size:
                return False
            old = self.engine
            self.engine = make_engine(self.url, pool_size)
            self.pool_size = pool_size
            self._draining.append(old)
        # Connections still checked out of the old pool finish their work and close when returned.
        old.dispose(close=False)
        self.metrics.pool_size.set(pool_size)
        return True

    def close(self) -> None:
        self.engine.dispose()


def _checked_out(engine: sa.Engine) -> int:
    pool = engine.pool
    return int(pool.checkedout()) if isinstance(pool, sa.QueuePool) else 0
