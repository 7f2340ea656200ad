"""The production service's own incidents on its shape, judged by signals that see their mechanism where it
exports no metrics: its pool held by connections asleep inside open transactions (B-3)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from cli_runner import CliRunner
from prod_shape import create_database, create_topics_and_groups, drop_database

from concertops.devstack.components import HOST, MARIADB_PORT, REDIS_PORT

POOL_SIZE = 10  # the step10 map's deploy constant db_pool_size


@pytest.fixture
def step10(production_broker: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    name, url = create_database()
    create_topics_and_groups(production_broker)
    yield {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/7",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": production_broker,
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
        "CONCERTOPS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite'}",
        "CONCERTOPS_BACKEND_URLS": "",
    }
    drop_database(name)


@pytest.fixture
def users(step10: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """The service's database user and a reporting user, each with a password, on this test's database."""
    database = step10["CONCERTOPS_DATABASE_URL"].rsplit("/", 1)[1]
    suffix = uuid.uuid4().hex[:8]
    app, other = f"app_{suffix}", f"rep_{suffix}"
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        for user in (app, other):
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
            cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    yield database, app, other
    with admin.cursor() as cur:
        for user in (app, other):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    admin.close()


def _in_a_transaction(database: str, user: str) -> pymysql.Connection:
    """A connection that opened a transaction, read, and went to sleep (waiting for a second one)."""
    conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user=user, password=f"pw-{user}", database=database)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SELECT COUNT(*) FROM payment")
    return conn


def _alive(conn: pymysql.Connection) -> bool:
    try:
        conn.ping(reconnect=False)
    except pymysql.err.Error:
        return False
    return True


def _b3(cli: CliRunner, environment: dict[str, str], *args: str) -> tuple[int, dict]:
    done = cli(*args, "--format", "json", env=environment, timeout=120)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_b3_a_pool_held_inside_open_transactions_is_critical_and_apply_kills_exactly_those(
    cli: CliRunner, step10: dict[str, str], users: tuple[str, str, str]
) -> None:
    database, app, other = users
    assert cli("state", "init", env=step10).returncode == 0
    held = [_in_a_transaction(database, app) for _ in range(POOL_SIZE)]
    outsider = _in_a_transaction(database, other)  # another user's: never touched
    try:
        time.sleep(11)  # asleep inside the transaction for over 10 s (the processlist counts whole seconds)
        code, checked = _b3(cli, step10, "check", "B-3")
        (runbook,) = checked["runbooks"]
        findings = {f["signal"]: f for f in runbook["findings"]}
        pool = findings["pool_held_in_transaction"]
        assert code == 2 and runbook["status"] == "CRITICAL", runbook
        assert pool["status"] == "CRITICAL" and pool["value"] == 1.0, pool
        assert runbook["verdict"].startswith("the service's pool is held by connections asleep inside open")
        # The server-wide share is far from max_connections: it alone read this incident as OK.
        assert findings["connection_share"]["status"] == "OK", findings["connection_share"]

        _code, dry = _b3(cli, step10, "b3", "--dry-run", "--app-user", app, "--max-kills", "4")
        (kill,) = [s for s in dry["steps"] if s["id"] == "kill-idle"]
        assert "kill 4 of 10 connection(s)" in kill["intent"], kill
        assert "rolls back" in kill["intent"] and "run again or raise --max-kills" in kill["intent"], kill
        assert all(_alive(c) for c in held)  # dry: nobody killed
        time.sleep(11)  # the pings woke them: asleep again for over 10 s

        code, done = _b3(cli, step10, "b3", "--apply", "--yes", "--app-user", app)
        (kill,) = [s for s in done["steps"] if s["id"] == "kill-idle"]
        assert kill["affected"] == POOL_SIZE, kill
        assert not any(_alive(c) for c in held)
        assert _alive(outsider)
        assert code == 0, json.dumps(done.get("after"), indent=1)
        _code, after = _b3(cli, step10, "check", "B-3")
        pool = next(f for f in after["runbooks"][0]["findings"] if f["signal"] == "pool_held_in_transaction")
        assert pool["status"] == "OK" and pool["value"] < 0.5, pool
    finally:
        for conn in [*held, outsider]:
            if _alive(conn):
                conn.close()
