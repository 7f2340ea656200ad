"""The real local stack, for integration tests and game days. A missing service fails the test run with its
name; it is never skipped."""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Iterator

import pymysql
import pytest
from harness import BOOTSTRAP, Backend, Broker, free_port_block

from concertops.devstack.components import COMPONENTS, HOST, MARIADB_PORT


@pytest.fixture(scope="session")
def stack() -> None:
    down = [c.name for c in COMPONENTS if not c.ready()]
    if down:
        pytest.fail(
            f"the local stack is not running ({', '.join(down)} not answering): run `concertops devstack up` "
            "(make test does this)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def database_url(stack: None) -> Iterator[str]:
    """A database of this test run's own on the real MariaDB, dropped at the end."""
    name = f"concertops_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{name}"
    finally:
        with contextlib.suppress(pymysql.err.Error, OSError):
            conn.close()
        # A new connection: B-3's test kills this user's idle ones, the one above included.
        conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def backend(database_url: str) -> Iterator[Backend]:
    """Two real backend instances on this run's database, Redis (db 13) and the devstack's broker."""
    import redis

    from concertops.booking.db import make_engine
    from concertops.booking.schema_admin import migrate
    from concertops.config import Profile
    from concertops.contract.discovery import state_dir

    # An empty broker, as after `devstack up`: events of an earlier run (another database, the same event
    # ids) would otherwise be consumed into this run's database.
    fresh = Broker(state_dir())
    fresh.stop()
    fresh.start()
    engine = make_engine(database_url, pool_size=5)
    migrate(engine)
    redis_url = f"redis://{HOST}:6379/13"
    redis.Redis.from_url(redis_url).flushdb()
    profile = Profile(
        name="tests",
        database_url=database_url,
        redis_url=redis_url,
        kafka_bootstrap_servers=BOOTSTRAP,
    )
    harness = Backend(engine, profile, state_dir(), free_port_block(2))
    harness.start(2)
    try:
        yield harness
    finally:
        harness.stop()
        engine.dispose()


@pytest.fixture
def booking(backend: Backend) -> Iterator[Backend]:
    """The session's backend, with recommended settings and no queue tokens left over from earlier tests.

    An instance that died during an earlier test is reported as a warning (exit status and log tail) and the
    pair is restarted, so one crash does not fail every test after it while still being seen.
    """
    dead = backend.dead()
    if dead:
        warnings.warn(f"backend instance died before this test: {'; '.join(dead)}", stacklevel=1)
        backend.stop()
        backend.start(2)
    backend.release_tokens()
    backend.preset("recommended")
    yield backend
    if len(backend.instances) != 2:
        backend.start(2)


@pytest.fixture
def broker(stack: None) -> Iterator[Broker]:
    """The devstack's broker; always running again after the test."""
    from concertops.contract.discovery import state_dir

    handle = Broker(state_dir())
    yield handle
    handle.start()
