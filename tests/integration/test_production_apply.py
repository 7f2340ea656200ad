"""Remediation on the production service's shape, with the real binary and ``service_map: step10``: each
incident seeded as the issue describes it, the data checked after ``--apply --yes``, the topic read back,
the hand-off steps with a hook and without one, and concertops's state kept out of the service's schema.

The tests share one seeded state (module fixture), each on its own incident."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import redis
import sqlalchemy as sa
from cli_runner import CliRunner, run_cli
from prod_shape import (
    create_database,
    create_topics_and_groups,
    drop_database,
    idle_connections,
    seed_holds,
    seed_payments,
    seed_tokens,
)

from concertops.devstack.components import HOST, MARIADB_PORT, REDIS_PORT

REDIS_DB = 8
APP_USER, APP_PASSWORD = "step10_app", "app-Secret-4242"
OTHER_USER = "step10_analyst"
EXPIRED_AT = (0, 3)  # two of the oldest WAITING tokens have expired (their clean-up has not run)


@pytest.fixture(scope="module")
def prod(production_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    name, url = create_database()
    state = f"concertops_state_{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    client.flushdb()
    create_topics_and_groups(production_broker)
    seed_holds(url)
    tokens = seed_tokens(client, waiting=260, active=1, expired=EXPIRED_AT)
    present, absent = seed_payments(url, production_broker, count=50, missing=20)
    env = {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/{REDIS_DB}",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": production_broker,
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
        "CONCERTOPS_STATE_URL": f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{state}",
        "XDG_STATE_HOME": str(tmp_path_factory.mktemp("state")),
    }
    # Each test stands on its own (xdist may run them on different workers): the store exists from the
    # start; the test of an apply before `state init` uses a store of its own.
    created = run_cli("state", "init", env=env)
    assert created.returncode == 0, created.stderr
    yield {
        "env": env,
        "url": url,
        "database": name,
        "state": state,
        "redis": client,
        "tokens": tokens,
        "present": present,
        "absent": absent,
        "bootstrap": production_broker,
    }
    client.flushdb()
    drop_database(name)
    drop_database(state)
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        for user in (APP_USER, OTHER_USER):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    admin.close()


def _scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _copies_on_topic(bootstrap: str) -> dict[str, int]:
    """paymentId → how many payment.completed messages name it, read by a reader of the test's own."""
    from concertops.contract.envelope import payment_of
    from concertops.sources.topic_read import read_topic

    identify = payment_of("step10")
    read = read_topic(
        bootstrap, "payment.completed", None, max_messages=100_000, max_seconds=60, identify=identify
    )
    assert read.complete
    return read.ids


def _audit(cli: CliRunner, env: dict[str, str], runbook: str) -> list[dict[str, Any]]:
    done = cli("audit", "--runbook", runbook, "--format", "json", "--limit", "200", env=env)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_apply_before_the_state_store_exists_is_one_line_naming_state_init(
    cli: CliRunner, prod: dict[str, Any]
) -> None:
    fresh = f"concertops_state_{uuid.uuid4().hex[:8]}"
    env = {**prod["env"], "CONCERTOPS_STATE_URL": f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{fresh}"}
    expired = "SELECT COUNT(*) FROM reservation WHERE status = 'EXPIRED'"
    try:
        before = _scalar(prod["url"], expired)
        done = cli("b2", "--apply", "--yes", env=env)
        assert done.returncode == 3, done.stdout
        assert "`concertops state init`" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert _scalar(prod["url"], expired) == before  # nothing applied

        created = cli("state", "init", env=env)
        assert created.returncode == 0, created.stderr
        assert "created" in created.stdout and fresh in created.stdout
        again = cli("state", "init", env=env)
        assert "already there" in again.stdout
    finally:
        drop_database(fresh)


def test_b2_expires_the_overdue_uuid_holds_only_and_keeps_its_state_out_of_the_service(
    cli: CliRunner, prod: dict[str, Any]
) -> None:
    done = cli("b2", "--apply", "--yes", "--batch-size", "7", env=prod["env"])
    assert done.returncode == 0, done.stdout + done.stderr  # the production shape has a broker of its own
    url = prod["url"]
    assert _scalar(url, "SELECT COUNT(*) FROM reservation WHERE status = 'EXPIRED'") == 40
    # The 5 not yet due stay HELD, and each expired one was overdue.
    assert _scalar(url, "SELECT COUNT(*) FROM reservation WHERE status = 'HELD'") == 5
    assert (
        _scalar(url, "SELECT COUNT(*) FROM reservation WHERE status = 'HELD' AND expiresAt < UTC_TIMESTAMP()")
        == 0
    )
    rows = _audit(cli, prod["env"], "B-2")
    batches = [r for r in rows if r["action"].startswith("batch ")]
    # Batches of 7 HELD keys each (the 5 not due among them stay HELD): 40 expired, never more than 7 a batch.
    assert sum(r["affected"] for r in batches) == 40 and max(r["affected"] for r in batches) <= 7
    assert len(batches) >= 6
    handed = [r for r in rows if r["step"] == "reschedule-mode"]
    assert handed and handed[-1]["result"] == "handed over"
    assert "expiry_consumer_mode sleep → reschedule" in handed[-1]["detail"]
    # No table of concertops's in the service's schema; its audit is in the state store.
    tables = _scalar(
        url,
        "SELECT GROUP_CONCAT(table_name) FROM information_schema.tables WHERE table_schema = DATABASE()"
        " AND table_name LIKE 'remediation%'",
    )
    assert tables is None
    again = cli("b2", "--apply", "--yes", env=prod["env"])
    assert "overdue holds in batches" not in again.stdout, again.stdout  # nothing left to expire


def test_a3_activates_the_oldest_waiting_within_max_active_tokens_and_leaves_expired_ones(
    cli: CliRunner, prod: dict[str, Any]
) -> None:
    client, tokens = prod["redis"], prod["tokens"]
    done = cli("a3", "--apply", "--yes", "--verify-timeout", "0", "--format", "json", env=prod["env"])
    result = json.loads(done.stdout)
    activate = next(s for s in result["steps"] if s["id"] == "activate-now")
    # MAX_ACTIVE_TOKENS 50, 1 ACTIVE before: 49 slots, taken by the oldest 49 that had not expired.
    assert activate["result"] == "ok" and activate["affected"] == 49, activate
    assert client.zcard("queue:active") == 50
    eligible = [t for i, t in enumerate(tokens) if i not in EXPIRED_AT]
    for value in eligible[:49]:
        assert client.hget(f"queue:token:{value}", "status") == "ACTIVE", value
        assert client.zscore("queue:waiting", value) is None
    for i in EXPIRED_AT:
        assert client.hget(f"queue:token:{tokens[i]}", "status") == "WAITING"
        assert client.zscore("queue:waiting", tokens[i]) is not None  # the service's clean-up removes it
    assert client.hget(f"queue:token:{eligible[49]}", "status") == "WAITING"
    assert client.zcard("queue:waiting") == 260 - 49
    # The ceiling and the period are deploy constants: handed over; the verification says it is not over.
    handed = {s["id"]: s for s in result["steps"] if s["result"] == "handed over"}
    assert set(handed) == {"event-activation", "shorter-period"}, result["steps"]
    assert "src/queue/queue.scheduler.ts" in handed["shorter-period"]["detail"]
    # 211 WAITING (above 200) and the oldest waiting longer every second: never OK after this run.
    assert result["after"]["status"] in ("WARNING", "CRITICAL")
    assert done.returncode == {"WARNING": 1, "CRITICAL": 2}[result["after"]["status"]]
    after = {f["signal"]: f for f in result["after"]["findings"]}
    assert after["queue_waiting"]["value"] == 211

    full = cli("a3", "--apply", "--yes", "--format", "json", env=prod["env"])
    activate = next(s for s in json.loads(full.stdout)["steps"] if s["id"] == "activate-now")
    assert activate["affected"] == 0 and client.zcard("queue:active") == 50  # never past the ceiling
    # Nothing changed, the rest handed over (no slot free): one probe, not the verification's wait.
    assert "nothing was changed and the rest is handed over: verified once" in full.stderr, full.stderr


def test_b1_publishes_each_missing_event_once_in_the_envelope(cli: CliRunner, prod: dict[str, Any]) -> None:
    env = prod["env"]
    check = cli("check", "B-1", "--format", "json", env=env)
    finding = next(
        f
        for f in json.loads(check.stdout)["runbooks"][0]["findings"]
        if f["signal"] == "unpublished_payments"
    )
    assert finding["status"] == "CRITICAL" and finding["value"] == 20, finding
    done = cli("b1", "--apply", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published 20 event(s) to payment.completed; read back: each once" in done.stdout

    copies = _copies_on_topic(prod["bootstrap"])
    for payment in prod["present"] + prod["absent"]:
        assert copies.get(payment) == 1, payment  # the missing ones once, the present ones not again
    rerun = cli("b4", "--apply", "--yes", env=env)  # B-4 shares the re-publish: nothing left for it
    assert rerun.returncode == 0 and "nothing to do" in rerun.stdout, rerun.stdout

    # B-4's own incident: five more payments whose events the disconnected producer skipped.
    _present, skipped = seed_payments(prod["url"], prod["bootstrap"], count=5, missing=5)
    done = cli("b4", "--apply", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published 5 event(s) to payment.completed; read back: each once" in done.stdout
    copies = _copies_on_topic(prod["bootstrap"])
    assert all(copies.get(payment) == 1 for payment in skipped + prod["absent"])


def test_handoff_hook_runs_with_the_values_and_a_failing_hook_stops_the_run(
    cli: CliRunner, prod: dict[str, Any], tmp_path: Path
) -> None:
    seed_holds(prod["url"], overdue=3, not_due=0)
    record = tmp_path / "calls.txt"
    hook = tmp_path / "hook.sh"
    refuse = 'echo "deploy refused: password=hunter2" >&2; exit 7'
    hook.write_text(f'#!/bin/sh\necho "$@" >> {record}\n[ "$1" != fail ] || {{ {refuse}; }}\n')
    hook.chmod(0o755)
    env = {**prod["env"], "CONCERTOPS_HANDOFF_HOOK": f"{hook} {{setting}} {{value}} {{env}}"}
    done = cli("b2", "--apply", "--yes", "--format", "json", env=env)
    steps = {s["id"]: s for s in json.loads(done.stdout)["steps"]}
    assert steps["reschedule-mode"]["result"] == "ok", steps
    assert record.read_text().splitlines() == ["expiry_consumer_mode reschedule EXPIRY_CONSUMER_MODE"]

    seed_holds(prod["url"], overdue=3, not_due=0)
    failing = {**env, "CONCERTOPS_HANDOFF_HOOK": f"{hook} fail {{setting}}"}
    done = cli("b2", "--apply", "--yes", "--format", "json", env=failing)
    assert done.returncode == 2, done.stdout
    steps = {s["id"]: s for s in json.loads(done.stdout)["steps"]}
    assert steps["reschedule-mode"]["result"] == "failed"
    assert "exited 7" in steps["reschedule-mode"]["detail"]
    assert "deploy refused" in steps["reschedule-mode"]["detail"]
    assert "hunter2" not in done.stdout  # the hook's stderr is redacted
    assert steps["sweep-fallback"]["result"] == "not run"
    row = [r for r in _audit(cli, env, "B-2") if r["step"] == "reschedule-mode"][-1]
    assert row["result"] == "failed" and "exited 7" in row["detail"]


def test_b3_kills_only_the_app_users_idle_connections(cli: CliRunner, prod: dict[str, Any]) -> None:
    app = idle_connections(prod["database"], APP_USER, APP_PASSWORD, 60)
    other = idle_connections(prod["database"], OTHER_USER, "other-Secret-1", 1)[0]
    time.sleep(11)  # idle for over the page's 10 s
    done = cli(
        "b3",
        "--apply",
        "--yes",
        "--app-user",
        APP_USER,
        "--max-kills",
        "60",
        "--format",
        "json",
        env=prod["env"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kill = next(s for s in json.loads(done.stdout)["steps"] if s["id"] == "kill-idle")
    assert kill["affected"] == 60, kill
    alive = 0
    for conn in app:
        try:
            conn.ping(reconnect=False)
            alive += 1
        except pymysql.err.Error:
            pass
    assert alive == 0
    other.ping(reconnect=False)  # another user's connection is never touched
    assert APP_PASSWORD not in done.stdout + done.stderr
    other.close()
