"""The commands an on-call engineer uses to understand what happened, under faults, on the production
service's shape: a killed run reads as killed, a refusal names the holder, reading the audit never waits on
the service, an apply keeps to --timeout, and the twin's migrations and `state init` run in any order."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cli_runner import CONCERTOPS, CliRunner, interruptible
from prod_shape import create_database, create_topics_and_groups, drop_database, seed_holds

from concertops.devstack.components import HOST, MARIADB_PORT, REDIS_PORT

REDIS_DB = 7


@pytest.fixture
def step10(production_broker: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh production-shape database with 40 overdue holds, concertops's state in a local file."""
    name, url = create_database()
    seed_holds(url)
    create_topics_and_groups(production_broker)
    yield {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/{REDIS_DB}",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": production_broker,
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
        "CONCERTOPS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite'}",
    }
    drop_database(name)


@contextlib.contextmanager
def _silent_port() -> Iterator[socket.socket]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen(64)
        yield server


def _contacted(server: socket.socket) -> bool:
    """Whether anyone connected to ``server`` (a connection waits in its backlog)."""
    server.setblocking(False)
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def _spawn(environment: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CONCERTOPS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **environment},
        preexec_fn=interruptible,
    )


def _expired(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT COUNT(*) FROM reservation WHERE status = 'EXPIRED'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _wait(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_killed_run_reads_interrupted_at_once_with_what_it_committed(
    cli: CliRunner, step10: dict[str, str]
) -> None:
    """SIGKILL mid-run, state in a local file: the next `audit` (no new apply) says the run is gone."""
    assert cli("state", "init", env=step10).returncode == 0
    run = _spawn(step10, "b2", "--apply", "--yes", "--batch-size", "5", "--sleep", "0.5")
    _wait(lambda: _expired(step10["CONCERTOPS_DATABASE_URL"]) >= 10, "two batches to commit")
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    committed = _expired(step10["CONCERTOPS_DATABASE_URL"])
    rows = json.loads(cli("audit", "--runbook", "B-2", "--format", "json", env=step10).stdout)
    walk = [r for r in rows if r["step"] == "force-expire" and not r["action"].startswith("batch ")]
    assert walk and walk[-1]["result"] == "interrupted", walk
    assert walk[-1]["detail"].startswith("process gone (pid "), walk[-1]
    assert f"{committed} rows" in walk[-1]["detail"], (committed, walk[-1])
    assert not [r for r in rows if r["result"] == "running"], rows


def test_a_refused_apply_always_names_the_holder(cli: CliRunner, step10: dict[str, str]) -> None:
    """Two applies started together, several times: the one refused names who holds the lock."""
    assert cli("state", "init", env=step10).returncode == 0
    contended = 0
    for _trial in range(3):
        seed_holds(step10["CONCERTOPS_DATABASE_URL"], overdue=40, not_due=0)  # 10 batches, 0.5 s apart
        runs = [
            _spawn(step10, "b2", "--apply", "--yes", "--batch-size", "4", "--sleep", "0.5") for _ in range(2)
        ]
        outcomes = [(run.communicate(timeout=120), run.returncode) for run in runs]
        refused = [err for (_out, err), code in outcomes if code == 3]
        if not refused:  # the first finished before the second asked: no contention this time
            continue
        contended += 1
        (line,) = refused
        assert "is being applied by" in line and "(pid " in line and "another session" not in line, line
    assert contended, "the two applies never met"


def test_a_lock_whose_holder_wrote_no_row_is_named_by_the_server(
    cli: CliRunner, step10: dict[str, str]
) -> None:
    """Where no row names the holder, the refusal says what the server knows of it, never "another
    session"."""
    import pymysql

    assert cli("state", "init", env=step10).returncode == 0
    database = step10["CONCERTOPS_DATABASE_URL"].rsplit("/", 1)[1]
    holder = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", database=database)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK('concertops:B-2', 0), CONNECTION_ID()")
            got, connection = cur.fetchone()
        assert got == 1
        refused = cli("b2", "--apply", "--yes", env=step10)
    finally:
        holder.close()
    assert refused.returncode == 3, refused.stdout
    assert f"connection {connection} (root@" in refused.stderr, refused.stderr
    assert "another session" not in refused.stderr


def test_reading_the_audit_never_waits_on_the_services_database(cli: CliRunner, tmp_path: Path) -> None:
    """The audit in the local state file, the service's database silent: read at once, never asked."""
    state_dir = tmp_path / "state"
    local = {"CONCERTOPS_STATE_DIR": str(state_dir), "CONCERTOPS_SERVICE_MAP": "step10"}
    created = cli(
        "state", "init", env={**local, "CONCERTOPS_STATE_URL": f"sqlite:///{state_dir / 'state.sqlite'}"}
    )
    assert created.returncode == 0, created.stderr
    with _silent_port() as server:
        silent = {
            **local,
            "CONCERTOPS_DATABASE_URL": f"mysql+pymysql://root@{HOST}:{server.getsockname()[1]}/x",
        }
        audit = cli("audit", "--format", "json", env=silent, timeout=30)
        shown = cli("state", "show", env=silent, timeout=30)
        contacted = _contacted(server)
    assert audit.returncode == 0 and json.loads(audit.stdout) == [], audit.stderr
    assert shown.returncode == 0 and str(state_dir / "state.sqlite") in shown.stdout, shown.stdout
    assert not contacted  # the service's server was never even connected to


def test_an_apply_keeps_to_its_timeout_against_a_silent_database(cli: CliRunner, tmp_path: Path) -> None:
    with _silent_port() as server:
        environment = {
            "CONCERTOPS_DATABASE_URL": f"mysql+pymysql://root@{HOST}:{server.getsockname()[1]}/x",
            "CONCERTOPS_SERVICE_MAP": "step10",
            "CONCERTOPS_PROMETHEUS_URL": "",
            "CONCERTOPS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite'}",
        }
        started = time.monotonic()
        cli("--version")
        interpreter = time.monotonic() - started  # what a Python process costs here before its clock runs
        started = time.monotonic()
        done = cli("b2", "--apply", "--yes", "--timeout", "3", env=environment, timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert elapsed - interpreter < 4.0, f"b2 --apply --timeout 3 took {elapsed:.1f} s"


@pytest.mark.parametrize("order", [("state", "migrate"), ("migrate", "state")], ids="-then-".join)
def test_the_twins_migrations_and_state_init_work_in_either_order(
    cli: CliRunner, stack: None, order: tuple[str, str]
) -> None:
    import pymysql

    name = f"concertops_order_{os.getpid()}_{order[0]}"
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}`")
    environment = {"CONCERTOPS_DATABASE_URL": f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{name}"}
    commands = {"state": ("state", "init"), "migrate": ("backend", "migrate")}
    try:
        for step in order:
            done = cli(*commands[step], env=environment)
            assert done.returncode == 0, (step, done.stdout + done.stderr)
        with admin.cursor() as cur:
            cur.execute(f"SHOW COLUMNS FROM `{name}`.remediation_audit LIKE 'reason'")
            assert cur.fetchone() is not None
        again = cli("state", "init", env=environment)
        assert "already there" in again.stdout
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def test_the_state_dir_moves_the_local_state_file_and_config_show_names_it(
    cli: CliRunner, tmp_path: Path
) -> None:
    """Two environments kept apart by CONCERTOPS_STATE_DIR get two audits, and say where each is."""
    places = []
    for env_name in ("staging", "prod"):
        state_dir = tmp_path / env_name
        environment = {
            "CONCERTOPS_STATE_DIR": str(state_dir),
            "CONCERTOPS_DATABASE_URL": f"sqlite:///{tmp_path / env_name}.db",
            "CONCERTOPS_SERVICE_MAP": "step10",
        }
        shown = json.loads(cli("config", "show", "--json", env=environment).stdout)
        assert any(str(state_dir / "state.sqlite") in place for place in shown["state_store"]), shown
        created = cli("state", "init", env=environment)
        assert created.returncode == 0, created.stderr
        places.append(state_dir / "state.sqlite")
    assert all(place.is_file() for place in places)


def test_tls_is_never_turned_off_unless_the_profile_says_so(cli: CliRunner, stack: None) -> None:
    """This server offers no TLS: `prefer` connects in clear, `require` refuses, and says why."""
    url = f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/mysql"
    for mode, works in (("prefer", True), ("off", True), ("require", False)):
        done = cli("doctor", "--json", env={"CONCERTOPS_DATABASE_URL": url, "CONCERTOPS_TLS": mode})
        row = next(c for c in json.loads(done.stdout)["checks"] if c["source"] == "database")
        assert row["ok"] is works, (mode, row)
        if not works:
            assert "SSL is required" in row["detail"], row
    bad = cli("check", env={"CONCERTOPS_TLS": "maybe"})
    assert bad.returncode == 3 and "'tls' is 'maybe'" in bad.stderr and "prefer, require, off" in bad.stderr
