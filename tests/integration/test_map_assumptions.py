"""A service map's assumptions held against the live service, on production's shape: a zone the rows
contradict, a zone with daylight saving time, a topic the broker lost, a misspelt queue key, a stale deploy
constant, and a service that is not there at all. None of them reads OK."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest
import redis
import sqlalchemy as sa
import workers
import yaml
from cli_runner import CliRunner
from harness import free_port_block, wait_for
from prod_shape import (
    create_topics_and_groups,
    seed_holds,
    seed_payments,
)

from concertops.contract import service_map
from concertops.contract.zones import offset_at
from concertops.devstack.components import HOST, MARIADB_PORT, REDIS_PORT

REDIS_DB = 10  # the step10_service fixture's


@pytest.fixture
def step10(step10_service: dict[str, str]) -> dict[str, str]:
    return step10_service


def _map(tmp_path: Path, **changes: Any) -> str:
    """step10's map with ``changes`` (dotted keys reach into it), written as a file of the test's own."""
    raw = yaml.safe_load((service_map.maps_dir() / "step10.yml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = raw
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / f"map-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _check(cli: CliRunner, env: dict[str, str], *runbooks: str) -> dict[str, dict[str, Any]]:
    done = cli("check", *runbooks, "--format", "json", env=env, timeout=120)
    assert done.returncode in (0, 1, 2, 3), done.stderr
    return {rb["id"]: rb for rb in json.loads(done.stdout)["runbooks"]}


def _finding(runbook: dict[str, Any], signal: str) -> dict[str, Any]:
    return next(f for f in runbook["findings"] if f["signal"] == signal)


def _count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_a_service_writing_plus_nine_is_judged_at_plus_nine_and_b2_expires_exactly_the_overdue(
    cli: CliRunner, step10: dict[str, str], tmp_path: Path
) -> None:
    url = step10["CONCERTOPS_DATABASE_URL"]
    seed_holds(url, overdue=40, not_due=5, zone_offset_s=9 * 3600)
    # The map says UTC (as written for the deployment): the rows say +09:00, and are judged so.
    b2 = _check(cli, step10, "B-2")["B-2"]
    overdue = _finding(b2, "overdue_holds")
    assert overdue["status"] == "CRITICAL" and overdue["value"] == 40, overdue
    assert "the service writes times +09:00 from UTC" in overdue["message"], overdue
    assert "the map says UTC" in overdue["note"], overdue
    # An IANA name for the same zone agrees with the rows: nothing more to say.
    seoul = {**step10, "CONCERTOPS_SERVICE_MAP": _map(tmp_path, zone="Asia/Seoul")}
    overdue = _finding(_check(cli, seoul, "B-2")["B-2"], "overdue_holds")
    assert (overdue["value"], overdue["note"]) == (40, ""), overdue
    doctor = cli("doctor", "--json", env=step10, timeout=120)
    assert doctor.stdout.startswith("{"), doctor.stdout + doctor.stderr
    zone_row = next(r for r in json.loads(doctor.stdout)["checks"] if r["source"] == "map: zone")
    assert not zone_row["ok"] and "+09:00" in zone_row["detail"] and "UTC" in zone_row["detail"], zone_row

    done = cli("b2", "--apply", "--yes", "--format", "json", env=step10, timeout=120)
    result = json.loads(done.stdout)
    (expire,) = [s for s in result["steps"] if s["id"] == "force-expire"]
    assert expire["affected"] == 40, expire
    assert "+09:00" in expire["intent"], expire
    assert _count(url, "SELECT COUNT(*) FROM reservation WHERE status = 'EXPIRED'") == 40
    assert _count(url, "SELECT COUNT(*) FROM reservation WHERE status = 'HELD'") == 5  # not due: untouched


def test_a_map_east_of_a_service_writing_utc_never_expires_a_hold_before_it_is_due(
    cli: CliRunner, step10: dict[str, str], tmp_path: Path
) -> None:
    """The dangerous way round: a map at +09:00 on rows written in UTC would have called every hold of the
    next nine hours overdue."""
    url = step10["CONCERTOPS_DATABASE_URL"]
    seed_holds(url, overdue=3, not_due=5)
    env = {**step10, "CONCERTOPS_SERVICE_MAP": _map(tmp_path, zone="+09:00")}
    overdue = _finding(_check(cli, env, "B-2")["B-2"], "overdue_holds")
    assert overdue["value"] == 3 and "writes times +00:00 from UTC" in overdue["note"], overdue
    done = cli("b2", "--apply", "--yes", "--format", "json", env=env, timeout=120)
    assert done.returncode in (0, 1, 2), done.stderr
    assert _count(url, "SELECT COUNT(*) FROM reservation WHERE status = 'HELD'") == 5


def test_an_iana_zone_with_daylight_saving_time_judges_rows_from_both_sides_of_a_change(
    cli: CliRunner, step10: dict[str, str], tmp_path: Path
) -> None:
    """Europe/Berlin: rows written today at today's offset, and holds left from six months ago written at
    that season's offset (the other side of a change). Today's rows agree with the zone; every old hold
    and every overdue new one is counted, and none of those not yet due."""
    url = step10["CONCERTOPS_DATABASE_URL"]
    now = datetime.now(UTC).replace(tzinfo=None)
    today = int(offset_at("Europe/Berlin", now).total_seconds())
    then = now - timedelta(days=182)
    other_side = int(offset_at("Europe/Berlin", then).total_seconds())
    assert today != other_side  # six months apart: one summer time, one winter time
    seed_holds(url, overdue=4, not_due=5, zone_offset_s=today)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for _ in range(3):
            conn.execute(
                sa.text(
                    "INSERT INTO reservation"
                    " (reservationId, userId, seatId, status, heldAt, expiresAt, createdAt) VALUES"
                    " (:r, :u, :s, 'HELD', :held, :held + INTERVAL 5 MINUTE, :created)"
                ),
                {
                    "r": str(uuid.uuid4()),
                    "u": str(uuid.uuid4()),
                    "s": str(uuid.uuid4()),
                    "held": then + timedelta(seconds=other_side),
                    "created": then,
                },
            )
    engine.dispose()
    berlin = {**step10, "CONCERTOPS_SERVICE_MAP": _map(tmp_path, zone="Europe/Berlin")}
    overdue = _finding(_check(cli, berlin, "B-2")["B-2"], "overdue_holds")
    assert (overdue["value"], overdue["note"]) == (7, ""), overdue
    # The other season's fixed offset is contradicted by today's rows: judged at today's.
    fixed = "+02:00" if today == 3600 else "+01:00"
    summer = {**step10, "CONCERTOPS_SERVICE_MAP": _map(tmp_path, zone=fixed)}
    overdue = _finding(_check(cli, summer, "B-2")["B-2"], "overdue_holds")
    assert overdue["value"] == 7 and f"the map says {fixed}" in overdue["note"], overdue


@pytest.fixture
def losing_broker() -> Iterator[Any]:
    """A broker of the test's own whose storage a restart loses (Tansu keeps it in memory)."""
    from concertops.devstack import probes
    from concertops.devstack.components import tansu_binary

    port = free_port_block(1, workers.port_block_start() + 740)
    url = f"tcp://{HOST}:{port}"

    class Broker:
        bootstrap = f"{HOST}:{port}"
        process: subprocess.Popen[bytes] | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for(lambda: probes.kafka_ready(HOST, port), timeout=30, what="the test's broker")

        def stop(self) -> None:
            if self.process is not None:
                self.process.terminate()
                self.process.wait(10)
                self.process = None

    broker = Broker()
    broker.start()
    yield broker
    broker.stop()


def _on_topic(bootstrap: str, topic: str) -> list[str]:
    """Every message's payload paymentId, read by a plain consumer from the beginning."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "enable.partition.eof": True,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found, ended = [], set()
    deadline = datetime.now() + timedelta(seconds=60)
    while len(ended) < len(partitions) and datetime.now() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
            continue
        found.append(json.loads(message.value())["payload"]["paymentId"])
    consumer.close()
    assert len(ended) == len(partitions), "the topic was not read to its end"
    return found


def test_a_topic_the_broker_lost_is_critical_and_apply_with_create_topic_rebuilds_exactly_the_missing(
    cli: CliRunner, step10: dict[str, str], losing_broker: Any
) -> None:
    url = step10["CONCERTOPS_DATABASE_URL"]
    create_topics_and_groups(losing_broker.bootstrap)
    _present, absent = seed_payments(url, losing_broker.bootstrap, count=20, missing=20)
    losing_broker.stop()  # storage lost: back with no topic at all
    losing_broker.start()
    env = {**step10, "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": losing_broker.bootstrap}

    checked = _check(cli, env, "B-1", "B-4")
    for runbook in ("B-1", "B-4"):
        found = _finding(checked[runbook], "unpublished_payments")
        assert found["status"] == "CRITICAL" and found["value"] == 20, found
        assert checked[runbook]["status"] == "CRITICAL"
        verdict = checked[runbook]["verdict"]
        assert "does not exist on the broker" in verdict and "map names the wrong topic" in verdict, verdict

    refused = cli("b4", "--apply", "--yes", "--format", "json", env=env, timeout=120)
    steps = json.loads(refused.stdout)["steps"]
    (step,) = [s for s in steps if s["id"] == "republish-window"]
    assert step["result"] == "failed" and "--create-topic" in step["detail"], step
    assert "kafka-topics.sh" in step["detail"] and "--partitions 1" in step["detail"], step

    done = cli("b4", "--apply", "--yes", "--create-topic", "--format", "json", env=env, timeout=120)
    step = next(s for s in json.loads(done.stdout)["steps"] if s["id"] == "republish-window")
    assert step["result"] == "ok" and step["affected"] == 20, step
    assert step["detail"].startswith("created payment.completed; published 20 event(s)"), step
    on_topic = _on_topic(losing_broker.bootstrap, "payment.completed")
    assert sorted(on_topic) == sorted(absent)  # exactly the 20, each once


def test_a_misspelt_queue_key_in_a_busy_redis_is_unknown(
    cli: CliRunner, step10: dict[str, str], tmp_path: Path
) -> None:
    from prod_shape import seed_tokens

    client = redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB)
    seed_tokens(client, waiting=260, active=1)
    client.set("session:abc", "1")
    env = {**step10, "CONCERTOPS_SERVICE_MAP": _map(tmp_path, queue__waiting__key="queue:waitng")}
    a3 = _check(cli, env, "A-3")["A-3"]
    waiting = _finding(a3, "queue_waiting")
    assert waiting["status"] == "UNKNOWN" and "queue:waiting" in waiting["message"], waiting
    assert "the map may name the wrong key" in waiting["message"], waiting
    assert a3["status"] != "OK", a3
    # A family name nobody uses at all, in a busy database: the same.
    env = {**step10, "CONCERTOPS_SERVICE_MAP": _map(tmp_path, queue__waiting__key="wait:list")}
    waiting = _finding(_check(cli, env, "A-3")["A-3"], "queue_waiting")
    assert waiting["status"] == "UNKNOWN" and "no key of its family wait:*" in waiting["message"], waiting
    client.close()


def test_a_stale_max_active_tokens_is_named_and_not_acted_on(
    cli: CliRunner, step10: dict[str, str], tmp_path: Path
) -> None:
    from prod_shape import seed_tokens

    client = redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    seed_tokens(client, waiting=30, active=60)  # a deploy raised MAX_ACTIVE_TOKENS; the map still says 50
    a3 = _check(cli, step10, "A-3")["A-3"]
    active = _finding(a3, "queue_active")
    assert active["status"] == "WARNING" and active["value"] == 60 and active["warning"] == 50, active
    assert "the constant is stale" in a3["verdict"], a3
    done = cli("a3", "--apply", "--yes", "--verify-timeout", "0", "--format", "json", env=step10, timeout=120)
    step = next(s for s in json.loads(done.stdout)["steps"] if s["id"] == "activate-now")
    assert step["affected"] == 0 and "stale" in (step["intent"] + step["detail"]), step
    assert client.zcard("queue:active") == 60 and client.zcard("queue:waiting") == 30
    # The profile may say what the deploy changed, without editing the map.
    config = tmp_path / "concertops.yaml"
    profile = {k.removeprefix("CONCERTOPS_").lower(): v for k, v in step10.items()}
    profile["deploy_constants"] = {"max_active_tokens": 100}
    config.write_text(yaml.safe_dump({"profiles": {"prod": profile}}))
    only_file = {"CONCERTOPS_CONFIG": str(config), "CONCERTOPS_PROFILE": "prod"}
    a3 = cli("check", "A-3", "--format", "json", env=only_file, timeout=120)
    active = _finding(json.loads(a3.stdout)["runbooks"][0], "queue_active")
    assert active["status"] == "OK" and active["warning"] == 100, active
    client.close()


def test_a_service_that_is_not_there_reads_ok_nowhere(cli: CliRunner, step10: dict[str, str]) -> None:
    """Every endpoint refused, a database that holds none of the service's tables, an empty Redis: no
    runbook reads OK, B-3 included (the server's connection share alone said OK)."""
    name = f"concertops_empty_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    refused = free_port_block(1, workers.port_block_start() + 760)
    env = {
        **step10,
        "CONCERTOPS_DATABASE_URL": f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{name}",
        "CONCERTOPS_BACKEND_URLS": f"http://{HOST}:{refused}",
    }
    try:
        checked = _check(cli, env)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        admin.close()
    assert {rb: r["status"] for rb, r in checked.items() if r["status"] == "OK"} == {}, {
        rb: (r["status"], [(f["signal"], f["status"], f["message"]) for f in r["findings"]])
        for rb, r in checked.items()
    }
    b3 = checked["B-3"]
    assert b3["status"] == "UNKNOWN", b3
    pool = _finding(b3, "pool_in_use")
    assert pool["status"] == "UNKNOWN" and "its pool is not seen" in pool["message"], pool
