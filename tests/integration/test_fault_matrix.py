"""Never green while blind: each source stopped (a dead port) or a database without the queried columns,
then `check` in every format and each runbook command. No runbook that lost its decisive signals reads
OK, the exit code follows the documented order, and an apply on such a runbook refuses (exit 3).

And bounded in time: a port that accepts connections and never answers, or one that refuses them, still
ends `check --timeout 3` within 4 s, UNKNOWN."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import uuid
from collections.abc import Iterator

import pymysql
import pytest
from checking import SCHEMA, env, settled
from cli_runner import CliRunner
from harness import BOOTSTRAP, Backend

from concertops.devstack.components import HOST, MARIADB_PORT
from concertops.model.signals import Signal
from concertops.runbooks.pages import RUNBOOK_IDS
from concertops.sources.kafka import KafkaSource
from concertops.sources.sql import SqlSource

MEASURED = {"OK", "WARNING", "CRITICAL"}
RANK = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def _dead_port() -> int:
    """A port nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) and never says a word."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen(64)
        yield int(server.getsockname()[1])


@pytest.fixture(scope="module")
def columnless_database() -> Iterator[str]:
    """A database whose tables lack the columns the runbooks query."""
    name = f"concertops_nocols_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        for table in ("reservation", "payment", "seat", "schedule", "queue_token", "outbox_event"):
            cur.execute(f"CREATE TABLE `{name}`.`{table}` (id INT PRIMARY KEY)")
    try:
        yield f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


FAULTS = (
    "database",
    "schema without the columns",
    "broker",
    "redis",
    "prometheus",
    "prometheus and metrics endpoints",
)


def _faults(booking: Backend, columnless: str) -> dict[str, dict[str, str]]:
    dead = f"{HOST}:{_dead_port()}"
    return {
        "database": {"CONCERTOPS_DATABASE_URL": f"mysql+pymysql://root@{dead}/x"},
        "schema without the columns": {"CONCERTOPS_DATABASE_URL": columnless},
        "broker": {"CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": dead},
        "redis": {"CONCERTOPS_REDIS_URL": f"redis://{dead}/0"},
        "prometheus": {"CONCERTOPS_PROMETHEUS_URL": f"http://{dead}"},
        "prometheus and metrics endpoints": {
            "CONCERTOPS_PROMETHEUS_URL": f"http://{dead}",
            "CONCERTOPS_METRICS_URLS": f"http://{dead}/metrics",
        },
    }


def _expected_exit(document: dict) -> int:
    findings = [f["status"] for r in document["runbooks"] for f in r["findings"]]
    runbooks = [r["status"] for r in document["runbooks"]]
    if "CRITICAL" in findings or "CRITICAL" in runbooks:
        return 2
    if "UNKNOWN" in runbooks:
        return 3
    return max(RANK[s] for s in runbooks)


def _blind_runbooks(document: dict) -> list[str]:
    return [
        r["id"]
        for r in document["runbooks"]
        if not any(f["decisive"] and f["status"] in MEASURED for f in r["findings"])
    ]


@pytest.mark.parametrize("fault", FAULTS)
def test_no_runbook_reads_ok_while_blind_whatever_source_is_gone(
    cli: CliRunner, booking: Backend, columnless_database: str, fault: str
) -> None:
    import jsonschema

    settled(booking)  # Prometheus has scraped this session's instances: "no series" is not the fault's doing
    override = _faults(booking, columnless_database)[fault]
    # A source that refuses is known at once; one that answers has time to, on a busy machine too.
    environment = {**env(booking, "prometheus"), **override, "COLUMNS": "250", "CONCERTOPS_TIMEOUT": "10"}
    done = cli("check", "--format", "json", env=environment)
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    blind = _blind_runbooks(document)
    if fault == "database":  # refused at once: named as such, not waited out as "timed out"
        assert "Connection refused" in document["sources"]["sql"], document["sources"]
    for result in document["runbooks"]:
        if result["id"] in blind:
            assert result["status"] == "UNKNOWN", (fault, result["id"], result["verdict"])
            assert result["verdict"].startswith("could not be judged"), (fault, result["verdict"])
    assert done.returncode == _expected_exit(document) == document["exit_code"], fault

    # Each format is its own run (rates move in between): each must agree with itself, and a runbook
    # blinded by the fault is UNKNOWN in every one of them.
    nagios = cli("check", "--format", "nagios", env=environment)
    word = nagios.stdout.split(" ", 2)[1]
    assert RANK[word] == nagios.returncode or (word == "OK" and nagios.returncode == 0), (fault, word)
    for runbook_id in blind:
        assert f"{runbook_id}: could not be judged" in nagios.stdout, (fault, runbook_id)
    prom = cli("check", "--format", "prom", env=environment)
    statuses = dict(re.findall(r'concertops_runbook_status\{runbook="([A-Z]-\d)"\} (\d)', prom.stdout))
    assert set(statuses) == set(RUNBOOK_IDS), fault
    assert all(statuses[runbook_id] == "3" for runbook_id in blind), (fault, statuses)
    for runbook_id in RUNBOOK_IDS:
        command = runbook_id.replace("-", "").lower()
        one = cli(command, env=environment)
        verdict = next(r for r in document["runbooks"] if r["id"] == runbook_id)
        if runbook_id in blind:
            assert one.returncode == 3 and "could not be judged" in one.stdout, (fault, runbook_id)
            dry = cli(command, "--dry-run", "--format", "json", env=environment)
            assert dry.returncode == 3, (fault, runbook_id, dry.stdout[-300:], dry.stderr)
            assert json.loads(dry.stdout)["message"].startswith("refused"), (fault, runbook_id)
            assert json.loads(dry.stdout)["steps"] == []
        else:
            assert one.returncode in (0, 1, 2, 3), (fault, runbook_id, verdict["status"])
    # The matrix does blind something: without metrics, A-1 and A-2 have nothing decisive left. (A-3 is
    # never blind here: without metrics it still has the queue's counts from its store, and without the
    # database's columns it still has the metrics.)
    if fault == "prometheus and metrics endpoints":
        assert {"A-1", "A-2"} <= set(blind), blind


@pytest.mark.quick  # the Kafka admin source
def test_a_missing_consumer_group_and_a_missing_status_variable_are_unknown(booking: Backend) -> None:
    lag = Signal(
        "lag",
        "lag",
        "kafka_lag",
        warning=1,
        group=f"no-such-group-{uuid.uuid4().hex[:6]}",
        topic="reservation.expiration",
    )
    seen = KafkaSource(BOOTSTRAP, 5.0).observe(lag)
    assert seen.value is None and seen.error is not None and "not found" in seen.error
    ours = Signal("lag", "lag", "kafka_lag", warning=1, group=lag.group, topic=lag.topic, group_is_ours=True)
    assert KafkaSource(BOOTSTRAP, 5.0).observe(ours).value is not None  # ours: not replayed yet = behind
    missing_topic = Signal("d", "d", "topic_depth", warning=1, topic="no.such.topic")
    assert "not found" in str(KafkaSource(BOOTSTRAP, 5.0).observe(missing_topic).error)
    variable = Signal(
        "v", "v", "sql", warning=1, query="SHOW GLOBAL STATUS LIKE 'No_such_status_variable'", column=1
    )
    source = SqlSource(str(booking.profile.database_url), 5.0)
    try:
        observed = source.observe(variable)
    finally:
        source.close()
    assert observed.value is None and "no row" in str(observed.error)


@pytest.mark.parametrize("kind", ["silent", "refusing"])
def test_check_ends_within_its_timeout_whatever_the_sources_do(cli: CliRunner, kind: str) -> None:
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(_silent_port()) if kind == "silent" else _dead_port()
        where = f"{HOST}:{port}"
        environment = {
            "CONCERTOPS_DATABASE_URL": f"mysql+pymysql://root@{where}/x",
            "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": where,
            "CONCERTOPS_PROMETHEUS_URL": f"http://{where}",
            "CONCERTOPS_METRICS_URLS": f"http://{where}/metrics",
        }
        # A command that waited on the port (or on its own teardown) is killed by the harness and fails here.
        done = cli("check", "--timeout", "3", "--format", "json", env=environment, timeout=30)
    document = json.loads(done.stdout)
    # The command's own clock, counted from the process's start (interpreter and imports included), as a
    # cron or NRPE budget counts it.
    assert document["duration_s"] <= 3.0, f"check --timeout 3 took {document['duration_s']} s ({kind} port)"
    assert done.returncode == 3 and document["status"] == "UNKNOWN"
    assert {r["status"] for r in document["runbooks"]} == {"UNKNOWN"}
