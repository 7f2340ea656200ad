"""The real local stack, for integration tests and game days. A missing service fails the test run with its
name; it is never skipped."""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import workers
from harness import BOOTSTRAP, Backend, Broker, free_port_block, wait_for

from concertops.devstack.components import COMPONENTS, HOST, MARIADB_PORT, REDIS_PORT


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    """The devstack this worker uses: the one `make test` started, or (xdist workers after the first) one
    of the worker's own, started here and stopped at the end (tests/workers.py)."""
    from concertops.contract.discovery import state_dir
    from concertops.devstack import stack as devstack

    if workers.owns_stack():
        states = devstack.up(state_dir())
        failed = [f"{s.name}: {s.state} {s.detail}" for s in states if not s.ok]
        if failed:
            devstack.down(state_dir())
            pytest.fail(f"this worker's devstack did not start: {'; '.join(failed)}", pytrace=False)
    down = [c.name for c in COMPONENTS if not c.ready()]
    if down:
        pytest.fail(
            f"the local stack is not running ({', '.join(down)} not answering): run `concertops devstack up` "
            "(make test does this)",
            pytrace=False,
        )
    yield
    if workers.owns_stack():
        devstack.down(state_dir())


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
    redis_url = f"redis://{HOST}:{REDIS_PORT}/13"
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


@pytest.fixture
def step10_service(production_broker: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh production-shape database, its topics and groups, an empty Redis database (10), and the
    environment that points concertops at them (step10's map, its state in a local file, initialised)."""
    import redis
    from cli_runner import run_cli
    from prod_shape import create_database, create_topics_and_groups, drop_database, production_env

    name, url = create_database()
    create_topics_and_groups(production_broker)
    client = redis.Redis(host=HOST, port=REDIS_PORT, db=10)
    client.flushdb()
    env = production_env(url, production_broker, 10, tmp_path / "state.sqlite")
    assert run_cli("state", "init", env=env).returncode == 0
    yield env
    client.flushdb()
    client.close()
    drop_database(name)


@pytest.fixture(scope="session")
def production_broker(stack: None) -> Iterator[str]:
    """A Tansu broker for the production shape's topics (bootstrap ``host:port``), away from the twin's: both
    name their topics ``payment.completed`` and ``reservation.expiration``, and on one broker the twin's
    traffic would be lag of production's groups."""
    import subprocess

    from concertops.devstack import probes
    from concertops.devstack.components import tansu_binary

    port = free_port_block(1, workers.port_block_start() + 700)
    url = f"tcp://{HOST}:{port}"
    broker = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: probes.kafka_ready(HOST, port), timeout=30, what="the production shape's broker")
        yield f"{HOST}:{port}"
    finally:
        broker.terminate()
        broker.wait(10)
