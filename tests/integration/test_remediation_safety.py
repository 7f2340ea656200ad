"""Remediations that cannot hurt, on the real stack: one clock (the database's), locks that hold and that
concertops never kills itself, re-publish exactly once on the topic (read back by an independent reader),
the DLQ over every partition, counts that know the privileges they need, and options checked before a plan.
Each case was seen going wrong; each test fails on the code that let it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from checking import check, env, finding
from cli_runner import CONCERTOPS, CliRunner, interruptible
from harness import BOOTSTRAP, Backend, Broker, copies_on_topic, wait_for

from concertops.config import Profile
from concertops.contract import events
from concertops.contract.names import TOPIC_EXPIRATION_DLQ, TOPIC_PAYMENT_COMPLETED
from concertops.devstack.components import HOST, MARIADB_PORT
from concertops.engine.action_api import Context, Outcome
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import open_engine


def _spawn(booking: Backend, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CONCERTOPS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env(booking, "prometheus"), **(extra or {})},
        preexec_fn=interruptible,
    )


def _step(document: dict, step_id: str) -> dict:
    return next(s for s in document["steps"] if s["id"] == step_id)


def _ctx(booking: Backend, engine: sa.Engine) -> Context:
    profile = Profile(
        name="tests", kafka_bootstrap_servers=BOOTSTRAP, database_url=str(booking.profile.database_url)
    )
    return Context(profile, engine, dry_run=False, operator="t", reason="t")


HELD = "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'HELD'"


# -- one clock -----------------------------------------------------------------------------------------
def _faketime_env(shift: str) -> dict[str, str]:
    """The real binary with its clock shifted (libfaketime), wall clock only; no broker configured, as
    librdkafka hangs under libfaketime once it has a bootstrap address."""
    import libfaketime

    _ok, preload = libfaketime.get_reload_information()
    return {
        **preload,
        "FAKETIME": shift,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "DONT_FAKE_MONOTONIC": "1",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": "",
        "CONCERTOPS_PROMETHEUS_URL": "",
    }


@pytest.mark.parametrize("shift", ["+10m", "-10m"])
def test_b2_with_the_tools_clock_ten_minutes_off_expires_exactly_the_overdue_holds(
    booking: Backend, shift: str
) -> None:
    """``faketime ±10m concertops b2 --apply --yes``: the overdue 40 expire, the 5 due in 8 minutes stay
    HELD (their users are about to pay). With the host's clock, +10m expired all 45 and -10m none."""
    booking.release_holds()
    booking.preset("legacy")
    overdue = booking.overdue_holds(40, minutes_overdue=5)
    soon = booking.holds_due_in(5, minutes=8)
    proc = _spawn(booking, "b2", "--apply", "--yes", "--format", "json", extra=_faketime_env(shift))
    out, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, 1, 2), err
    done = json.loads(out)
    assert _step(done, "force-expire")["result"] == "ok", done["steps"]
    assert booking.scalar(HELD, s=overdue) == 0
    assert booking.scalar(HELD, s=soon) == 5
    booking.release_holds()


# -- locks ---------------------------------------------------------------------------------------------
def _b2_running(booking: Backend, holds: int) -> tuple[subprocess.Popen[str], int]:
    """A B-2 apply walking ``holds`` overdue holds one at a time, a tenth of a second apart."""
    booking.release_holds()
    booking.preset("legacy")
    schedule = booking.overdue_holds(holds)
    proc = _spawn(
        booking,
        "b2",
        "--apply",
        "--yes",
        "--batch-size",
        "1",
        "--sleep",
        "0.1",
        "--max-rows",
        "5000",
        "--format",
        "json",
    )
    wait_for(
        lambda: booking.scalar("SELECT IS_USED_LOCK('concertops:B-2')") is not None,
        timeout=60,
        what="B-2 to take its lock",
    )
    return proc, schedule


def test_b3_during_b2_never_kills_a_concertops_connection(cli: CliRunner, booking: Backend) -> None:
    """B-3's kill-idle while B-2 walks its holds: the app user's idle connections die, B-2's lock
    connection and an idle connection concertops opened elsewhere survive, and B-2 ends normally.
    (Before, the lock connection was its first victim, and a second B-2 could run at once.)"""
    database = booking.engine.url.database
    idle = [pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", database=database) for _ in range(55)]
    ours = open_engine(str(booking.profile.database_url))
    held = ours.connect()
    our_id = int(held.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())
    held.commit()
    proc, schedule = _b2_running(booking, holds=250)  # 1 hold a batch, 0.1 s apart: over 25 s
    lock_id = booking.scalar("SELECT IS_USED_LOCK('concertops:B-2')")
    time.sleep(11)  # every one of them asleep for over 10 s, the lock's connection included (before)
    b3 = cli(
        "b3", "--apply", "--yes", "--max-kills", "200", "--format", "json", env=env(booking, "prometheus")
    )
    assert b3.returncode in (0, 1, 2), b3.stderr
    assert proc.poll() is None, "B-2 ended before B-3 ran: nothing was tested"
    killed = _step(json.loads(b3.stdout), "kill-idle")
    assert killed["affected"] >= 55, killed
    assert str(lock_id) not in killed["detail"].split(": ", 1)[1].split(", "), killed["detail"]
    assert held.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one() == our_id  # alive, not reconnected
    out, err = proc.communicate(timeout=240)
    assert proc.returncode in (0, 1), err
    assert _step(json.loads(out), "force-expire")["result"] == "ok"
    assert booking.scalar(HELD, s=schedule) == 0
    held.close()
    ours.dispose()
    for conn in idle:
        conn.close()


def test_a_lock_killed_mid_run_stops_the_run_with_lock_lost(booking: Backend) -> None:
    """``KILL`` of B-2's lock connection mid-run: the run stops before its next batch, audits "lock lost"
    and exits 3; the stale lock row is gone once another run takes the lock."""
    before = booking.scalar("SELECT COALESCE(MAX(audit_id), 0) FROM remediation_audit")
    proc, schedule = _b2_running(booking, holds=300)
    wait_for(
        lambda: (
            booking.scalar(
                "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'EXPIRED'", s=schedule
            )
            >= 5
        ),
        timeout=60,
        what="a few batches",
    )
    lock_id = booking.scalar("SELECT IS_USED_LOCK('concertops:B-2')")
    with booking.engine.begin() as conn:
        conn.execute(sa.text(f"KILL CONNECTION {int(lock_id)}"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, (out, err)
    assert "lock" in err and "lost" in err, err
    left = booking.scalar(HELD, s=schedule)
    assert 0 < left < 300  # stopped mid-walk
    results = [
        r.result
        for r in booking.rows(
            "SELECT result FROM remediation_audit WHERE runbook = 'B-2' AND audit_id > :b", b=before
        )
    ]
    assert "lock lost" in results, results
    assert booking.scalar("SELECT COUNT(*) FROM remediation_lock WHERE name = 'concertops:B-2'") == 0
    proc2 = _spawn(booking, "b2", "--apply", "--yes", "--format", "json")
    _out, err = proc2.communicate(timeout=180)
    assert proc2.returncode in (0, 1), err
    assert booking.scalar(HELD, s=schedule) == 0
    booking.release_holds()


def test_a_lock_row_whose_holder_is_gone_is_cleaned_by_the_next_run_of_any_runbook(booking: Backend) -> None:
    """A SIGKILLed run leaves its row behind (the server freed its GET_LOCK); the next lock taken, for any
    runbook, deletes it, and keeps the rows of locks still held."""
    from concertops.contract.schema import remediation_lock
    from concertops.engine.audit import now
    from concertops.engine.locking import RunLock

    row = {"holder": "killed run", "host": "elsewhere", "pid": 1, "acquired_at": now()}
    holder = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", database=booking.engine.url.database)
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK('concertops:A-9', 0)")
    with booking.engine.begin() as conn:
        conn.execute(remediation_lock.insert().values(name="concertops:B-9", **row))
        conn.execute(remediation_lock.insert().values(name="concertops:A-9", **row))
    engine = open_engine(str(booking.profile.database_url))
    try:
        with RunLock(engine, "A-1", "test"):
            names = set(booking.rows("SELECT name FROM remediation_lock"))
    finally:
        engine.dispose()
        holder.close()
    assert {n[0] for n in names} == {"concertops:A-1", "concertops:A-9"}
    with booking.engine.begin() as conn:
        conn.execute(remediation_lock.delete())


def test_b1_and_b4_share_the_republish_lock(booking: Backend) -> None:
    """A B-1 run holding the re-publish: B-4, asked to re-publish too, is refused (exit 3) instead of
    racing it into a duplicate-key failure."""
    left = booking.unnotified_payments(3)
    holder = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", database=booking.engine.url.database)
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK('concertops:republish-payments', 0)")
    try:
        proc = _spawn(booking, "b4", "--apply", "--yes", "--format", "json")
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        booking.forget_payments(left)
    assert proc.returncode == 3, (out, err)
    assert "republish-payments" in err, err


# -- re-publish exactly once ---------------------------------------------------------------------------
def _event_ids(payments: list[int]) -> list[str]:
    return [events.event_id(TOPIC_PAYMENT_COMPLETED, p) for p in payments]


def _republish(booking: Backend, engine: sa.Engine) -> Outcome:
    from concertops.engine.republish import RepublishPayments

    config = catalogue.RepublishPaymentsParams(
        window="last_hour", max_events=50_000, batch=200, max_rate=10_000
    )
    action = RepublishPayments(Step("republish-window", "t", "republish_payments", config))
    ctx = _ctx(booking, engine)
    action.prepare(ctx)
    return action.run(ctx)


def test_republish_then_an_immediate_rerun_puts_each_event_on_the_topic_once(booking: Backend) -> None:
    """2,000 payments whose events never left. Re-publish, then again at once, while nobody has recorded
    a notification yet (the service is stopped): the rerun publishes 0, and an independent reader finds
    each event on the topic exactly once. (Before, "not notified" was taken as "never delivered", and the
    rerun sent them all again.)"""
    payments = booking.unnotified_payments(2000)
    engine = open_engine(str(booking.profile.database_url))
    booking.stop()  # no relay, no notifications: every payment stays "not notified" between the runs
    try:
        first = _republish(booking, engine)
        second = _republish(booking, engine)
    finally:
        engine.dispose()
        booking.start()
    assert first.result == "ok" and first.affected >= 2000, first.detail
    assert "0 duplicate(s)" in first.detail, first.detail
    assert second.result == "ok" and second.affected == 0, second.detail
    copies = copies_on_topic(TOPIC_PAYMENT_COMPLETED, _event_ids(payments))
    assert sorted(set(copies.values())) == [1], {
        n: sum(1 for c in copies.values() if c == n) for n in set(copies.values())
    }


def test_republish_killed_mid_run_then_rerun_leaves_no_duplicate(booking: Backend) -> None:
    """``b4 --apply`` SIGKILLed while it publishes 2,000 events, with the service's relay running; a rerun
    finishes. Each event is on the topic exactly once: the killed batch was claimed (the relay left it
    alone) and the rerun found it on the topic instead of sending it again."""
    booking.preset("legacy")
    payments = booking.unnotified_payments(2000)
    ids = _event_ids(payments)
    published = "SELECT COUNT(*) FROM outbox_event WHERE status = 'PUBLISHED' AND event_id IN :e"

    def count(sql: str) -> int:
        with booking.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(sql).bindparams(sa.bindparam("e", expanding=True)), {"e": ids}
                ).scalar_one()
            )

    proc = _spawn(
        booking,
        "b4",
        "--apply",
        "--yes",
        "--max-events",
        "20000",
        "--batch",
        "50",
        "--max-rate",
        "1000",
        "--format",
        "json",
    )
    wait_for(lambda: count(published) >= 300, timeout=90, interval=0.01, what="a few batches published")
    proc.kill()
    proc.communicate(timeout=30)
    claimed = "SELECT COUNT(*) FROM outbox_event WHERE status = 'SENDING' AND event_id IN :e"
    assert count(claimed) <= 50  # at most the batch in flight
    # As seen a couple of minutes later (B-4 judges a claim older than a minute as a stopped run's).
    with booking.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE outbox_event SET published_at = published_at - INTERVAL 2 MINUTE"
                " WHERE status = 'SENDING' AND event_id IN :e"
            ).bindparams(sa.bindparam("e", expanding=True)),
            {"e": ids},
        )
    rerun = _spawn(booking, "b4", "--apply", "--yes", "--max-events", "20000", "--format", "json")
    _out, err = rerun.communicate(timeout=300)
    assert rerun.returncode in (0, 1, 2), err
    wait_for(lambda: count(published) == 2000, timeout=60, what="every event marked published")
    copies = copies_on_topic(TOPIC_PAYMENT_COMPLETED, ids)
    counted = {n: sum(1 for c in copies.values() if c == n) for n in set(copies.values())}
    assert counted == {1: 2000}, counted  # duplicates 0, missing 0


# -- every partition -----------------------------------------------------------------------------------
@pytest.fixture
def dlq_with_three_partitions() -> Any:
    """The DLQ re-created with 3 partitions for one test, then as the service creates it (1)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from concertops.engine.dlq_replay import GROUP

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

    def recreate(partitions: int) -> None:
        admin.delete_topics([TOPIC_EXPIRATION_DLQ])[TOPIC_EXPIRATION_DLQ].result()
        wait_for(
            lambda: TOPIC_EXPIRATION_DLQ not in admin.list_topics(timeout=5).topics, timeout=10, what="gone"
        )
        admin.create_topics([NewTopic(TOPIC_EXPIRATION_DLQ, partitions, 1)])[TOPIC_EXPIRATION_DLQ].result()
        wait_for(
            lambda: len(admin.list_topics(timeout=5).topics[TOPIC_EXPIRATION_DLQ].partitions) == partitions,
            timeout=10,
            what=f"{partitions} partitions",
        )
        # The replay group's offsets of the topic that was deleted must not apply to the new one.
        reset = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "enable.auto.commit": False})
        reset.commit(
            offsets=[TopicPartition(TOPIC_EXPIRATION_DLQ, p, 0) for p in range(partitions)],
            asynchronous=False,
        )
        reset.close()

    recreate(3)
    yield
    recreate(1)


def test_dlq_replay_reads_every_partition(
    cli: CliRunner, booking: Backend, broker: Broker, dlq_with_three_partitions: None
) -> None:
    """6 dead-lettered expiries over 3 partitions: the replay sends 6 (before: partition 0's 2), a rerun
    sends none, and the check's DLQ backlog reads 0 (before: 4, forever)."""
    from confluent_kafka import Producer

    from concertops.contract.kafka import producer_settings
    from concertops.engine.dlq_replay import GROUP, ReplayDlq

    producer = Producer(producer_settings(BOOTSTRAP))  # as the service's expiry consumer sends them
    for i in range(6):
        payload = events.expiration(9_900_000 + i, booking_now(booking))
        producer.produce(TOPIC_EXPIRATION_DLQ, key=str(i), value=json.dumps(payload), partition=i % 3)
    assert producer.flush(10) == 0
    engine = open_engine(str(booking.profile.database_url))
    config = catalogue.ReplayDlqParams(max_messages=1000, max_replays=3, max_rate=100)
    try:
        outcomes = []
        for _run in range(2):
            action = ReplayDlq(Step("replay-dlq", "t", "replay_dlq", config))
            ctx = _ctx(booking, engine)
            action.prepare(ctx)
            outcomes.append(action.run(ctx))
    finally:
        engine.dispose()
    assert outcomes[0].affected == 6, outcomes[0].detail
    assert outcomes[1].affected == 0, outcomes[1].detail
    assert broker.committed(GROUP, TOPIC_EXPIRATION_DLQ) == 6
    _code, checked = check(cli, booking, "prometheus", "B-2")
    assert finding(checked, "B-2", "dlq_depth")["value"] == 0


def booking_now(booking: Backend) -> Any:
    return booking.scalar("SELECT UTC_TIMESTAMP()")


# -- privileges ----------------------------------------------------------------------------------------
def test_without_process_privilege_the_idle_count_is_unknown_and_doctor_says_so(
    cli: CliRunner, booking: Backend
) -> None:
    """As a user without PROCESS, the processlist shows only that user's sessions: B-3's idle count is
    UNKNOWN "needs PROCESS privilege", not the smaller number; doctor names the missing grant."""
    database = booking.engine.url.database
    password = "pw-noprocess-7731"
    with booking.engine.begin() as conn:
        for host in ("%", "localhost"):
            conn.execute(
                sa.text(f"CREATE USER IF NOT EXISTS 'noprocess'@'{host}' IDENTIFIED BY '{password}'")
            )
            conn.execute(sa.text(f"GRANT ALL ON `{database}`.* TO 'noprocess'@'{host}'"))
    idle = [pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", database=database) for _ in range(2)]
    time.sleep(11)
    url = f"mysql+pymysql://noprocess:{password}@{HOST}:{MARIADB_PORT}/{database}"
    environment = {**env(booking, "prometheus"), "CONCERTOPS_DATABASE_URL": url}
    checked = cli("check", "B-3", "--format", "json", env=environment)
    idle_count = finding(json.loads(checked.stdout), "B-3", "idle_connections")
    assert idle_count["status"] == "UNKNOWN", idle_count
    assert "needs PROCESS privilege" in idle_count["message"], idle_count
    doctor = cli("doctor", "--json", env=environment)
    assert doctor.returncode == 3
    rows = {c["source"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert "B-3 needs PROCESS: MISSING" in rows["privileges"]["detail"], rows["privileges"]
    assert "GRANT PROCESS" in rows["privileges"]["fix"]
    assert password not in checked.stdout + checked.stderr + doctor.stdout + doctor.stderr
    for conn in idle:
        conn.close()


# -- options -------------------------------------------------------------------------------------------
def test_since_after_until_is_refused_before_anything_is_probed(cli: CliRunner, booking: Backend) -> None:
    """Before, with nothing to re-publish, ``b4 --since`` later than ``--until`` said "nothing to do", 0."""
    done = cli(
        "b4",
        "--apply",
        "--yes",
        "--since",
        "2026-01-02 10:00:00",
        "--until",
        "2026-01-02 09:00:00",
        env=env(booking, "prometheus"),
    )
    assert done.returncode == 3, done.stdout
    assert "--since" in done.stderr and "not before --until" in done.stderr
    assert "Traceback" not in done.stderr


def test_republish_that_cannot_read_the_topic_fails(booking: Backend, broker: Broker) -> None:
    """With the broker down, re-publish cannot tell what is missing: it fails, and says so (before: "ok")."""
    left = booking.unnotified_payments(3)
    engine = open_engine(str(booking.profile.database_url))
    broker.stop()
    try:
        outcome = _republish(booking, engine)
    finally:
        broker.start()
        engine.dispose()
        booking.forget_payments(left)
    assert outcome.result == "failed", outcome.detail
    assert "nothing published" in outcome.detail


def test_the_republish_window_ends_at_the_databases_now_whatever_the_hosts_clock(
    booking: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B-4's and B-1's window is the database's: with the host 10 minutes fast, it still ends now (before,
    it ended at the host's "now", and payments of the next 10 minutes' window were judged too early)."""
    from datetime import UTC, datetime, timedelta

    from concertops.engine import audit, republish

    fast = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=10)
    monkeypatch.setattr(audit, "now", lambda: fast)
    monkeypatch.setattr(republish, "now", lambda: fast, raising=False)
    engine = open_engine(str(booking.profile.database_url))
    config = catalogue.RepublishPaymentsParams(window="dropped", max_events=10, batch=10, max_rate=10)
    try:
        step = Step("republish-window", "t", "republish_payments", config)
        span = republish.window(_ctx(booking, engine), step, timedelta(0))  # the twin has an outbox
    finally:
        engine.dispose()
    database_now = booking_now(booking)
    assert abs((span.until - database_now).total_seconds()) < 5, (span, database_now)
    assert span.until - span.since == timedelta(hours=1)  # no Prometheus here: the last hour
