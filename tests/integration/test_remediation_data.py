"""Part B remediations on the real stack, with faults: each of B-1 … B-4 reproduced with the legacy preset,
detected, applied with `--apply --yes` and verified; force-expire killed mid-run; re-publish with the broker
killed mid-run; kill-idle among other users' connections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from checking import check, consistent, env, finding, wait_counter_scraped
from cli_runner import CONCERTOPS, CliRunner, interruptible
from harness import BOOTSTRAP, Backend, Broker, wait_for
from prod_shape import alive

from concertops.devstack.components import HOST, MARIADB_PORT


def apply(cli: CliRunner, booking: Backend, command: str, *args: str) -> tuple[int, dict]:
    done = cli(command, *args, "--format", "json", env=env(booking, "prometheus"), timeout=300)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def step(document: dict, step_id: str) -> dict:
    return next(s for s in document["steps"] if s["id"] == step_id)


OVERDUE = (
    "SELECT COUNT(*) FROM reservation WHERE status = 'HELD' AND held_expires_at < NOW() AND schedule_id = :s"
)


@pytest.mark.quick  # an apply: lock, batches, audit, verification
def test_b2_force_expires_overdue_holds_in_batches(cli: CliRunner, booking: Backend) -> None:
    booking.release_holds()
    booking.preset("legacy")  # no sweep, blocking consumer: lost expiries stay lost
    schedule = booking.overdue_holds(40)
    not_due = booking.hold(9601, booking.new_schedule(), 1)
    code, detected = check(cli, booking, "prometheus", "B-2")
    assert finding(detected, "B-2", "overdue_holds")["value"] == 40

    code, dry = apply(cli, booking, "b2", "--dry-run", "--batch-size", "7")
    assert code == 0 and step(dry, "force-expire")["affected"] == 40
    assert "in 6 batches" in step(dry, "force-expire")["detail"]
    assert booking.scalar(OVERDUE, s=schedule) == 40  # rolled back

    code, done = apply(cli, booking, "b2", "--apply", "--yes", "--batch-size", "7")
    assert code == 0, json.dumps(done["after"], indent=1)
    assert step(done, "force-expire")["affected"] == 40
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'EXPIRED'", s=schedule
        )
        == 40
    )
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM seat WHERE schedule_id = :s AND status = 'AVAILABLE'", s=schedule
        )
        == 40
    )
    assert booking.scalar("SELECT status FROM reservation WHERE reservation_id = :r", r=not_due) == "HELD"
    # Each expired hold's event is in the outbox once (deterministic id), for whoever consumes expiries.
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM outbox_event o JOIN reservation r"
            " ON o.aggregate_id = CAST(r.reservation_id AS CHAR)"
            " WHERE o.topic = 'reservation.expiration' AND r.schedule_id = :s",
            s=schedule,
        )
        == 40
    )
    assert booking.metric_all(
        "booking_setting_info", {"name": "expiry_consumer_mode", "value": "reschedule"}
    ) == [1.0, 1.0]
    consistent(booking)

    code, again = apply(cli, booking, "b2", "--apply", "--yes")
    assert code == 0 and again["steps"] == [] and again["message"].startswith("nothing to do")
    booking.release_holds()


def test_check_and_apply_agree_on_overdue_holds_on_a_server_not_in_utc(
    cli: CliRunner, booking: Backend
) -> None:
    """Detection and remediation open the database through one factory: both sessions run in UTC, so on a
    server whose zone is five hours ahead, holds due in two hours are overdue for neither."""
    booking.release_holds()
    booking.preset("legacy")
    schedule = booking.overdue_holds(40)
    booking.holds_due_in(5, minutes=120)
    root = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with root.cursor() as cur:
        cur.execute("SELECT @@global.time_zone")
        (zone,) = cur.fetchone()
        cur.execute("SET GLOBAL time_zone = '+05:00'")
    try:
        _code, detected = check(cli, booking, "prometheus", "B-2")
        _code, dry = apply(cli, booking, "b2", "--dry-run")
    finally:
        with root.cursor() as cur:
            cur.execute("SET GLOBAL time_zone = %s", (zone,))
        root.close()
    assert finding(detected, "B-2", "overdue_holds")["value"] == 40
    assert step(dry, "force-expire")["affected"] == 40
    assert booking.scalar(OVERDUE, s=schedule) == 40  # the dry run rolled back
    booking.release_holds()


def test_b2_a_host_clock_ten_minutes_fast_never_expires_a_hold_not_yet_due(
    booking: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overdue is the database's word: with the operator's host 10 minutes ahead, holds due in 8 minutes
    stay HELD (their users are about to pay) while the overdue ones expire."""
    from datetime import timedelta

    from concertops.config import Profile
    from concertops.engine import audit, force_expire
    from concertops.engine.action_api import Context
    from concertops.model.findings import Step
    from concertops.runbooks import catalogue
    from concertops.sources.database import open_engine

    booking.release_holds()
    booking.preset("legacy")
    schedule = booking.overdue_holds(40)
    soon = booking.holds_due_in(5, minutes=8)
    fast = audit.now() + timedelta(minutes=10)
    monkeypatch.setattr(force_expire, "now", lambda: fast)
    monkeypatch.setattr(audit, "now", lambda: fast)
    url = str(booking.profile.database_url)
    engine = open_engine(url)
    config = catalogue.ForceExpireParams(batch=7, batch_ms=0, max_rows=1000, sleep=0.0)
    action = force_expire.ForceExpire(Step("force-expire", "t", "force_expire", config))
    ctx = Context(Profile(name="tests", database_url=url), engine, dry_run=False, operator="t", reason="t")
    try:
        action.prepare(ctx)
        outcome = action.run(ctx)
    finally:
        engine.dispose()
    assert outcome.affected == 40
    held = "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'HELD'"
    assert booking.scalar(held, s=soon) == 5 and booking.scalar(held, s=schedule) == 0
    booking.release_holds()


def _spawn(booking: Backend, *args: str) -> subprocess.Popen[str]:
    """``concertops ARGS`` running in the background against the test's service, interruptible."""
    return subprocess.Popen(
        [CONCERTOPS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env(booking, "prometheus")},
        preexec_fn=interruptible,
    )


def _start_batched_b2(booking: Backend, holds: int = 40) -> tuple[subprocess.Popen[str], int, int]:
    """40 overdue holds and a B-2 apply walking them 5 at a time, half a second apart; returns the run,
    the schedule and the last audit id before it, once at least two batches have committed."""
    booking.release_holds()
    booking.preset("legacy")
    schedule = booking.overdue_holds(holds)
    before = booking.scalar("SELECT COALESCE(MAX(audit_id), 0) FROM remediation_audit")
    proc = _spawn(
        booking, "b2", "--apply", "--yes", "--batch-size", "5", "--sleep", "0.5", "--reason", "INC-42"
    )
    wait_for(lambda: _expired(booking, schedule) >= 10, timeout=60, what="two batches to commit")
    return proc, schedule, before


def _expired(booking: Backend, schedule: int) -> int:
    return int(
        booking.scalar(
            "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'EXPIRED'", s=schedule
        )
    )


def _audit_rows(booking: Backend, before: int) -> list[Any]:
    return booking.rows(
        "SELECT step, action, result, affected, detail, reason FROM remediation_audit"
        " WHERE runbook = 'B-2' AND audit_id > :b ORDER BY audit_id",
        b=before,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_b2_interrupted_between_batches_audits_what_the_database_holds(
    booking: Backend, signum: signal.Signals
) -> None:
    proc, schedule, before = _start_batched_b2(booking)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    expired = _expired(booking, schedule)
    rows = _audit_rows(booking, before)
    batches = [r for r in rows if r.action.startswith("batch ")]
    assert sum(r.affected for r in batches) == expired and len(batches) == expired // 5
    step_row = next(r for r in rows if r.step == "force-expire" and r.action == "force_expire")
    said = f"{len(batches)} batches committed, {expired} holds expired"
    assert step_row.result == "interrupted" and step_row.affected == expired and said in step_row.detail
    assert said in " ".join(err.split()), err  # the terminal says what the audit says
    assert {r.reason for r in rows} == {"INC-42"}  # the operator's reason on every row of the run
    booking.release_holds()


def test_b2_a_killed_run_is_reported_by_the_next_which_finishes_the_rest(
    cli: CliRunner, booking: Backend
) -> None:
    proc, schedule, before = _start_batched_b2(booking)
    proc.kill()
    proc.wait(timeout=10)
    committed = _expired(booking, schedule)
    listed = json.loads(
        cli("audit", "--runbook", "B-2", "--format", "json", env=env(booking, "prometheus")).stdout
    )
    dead = [
        r
        for r in listed
        if r["audit_id"] > before and r["step"] == "force-expire" and r["action"] == "force_expire"
    ]
    assert dead and dead[-1]["result"] == "interrupted" and "process gone" in dead[-1]["detail"]
    rerun = cli("b2", "--apply", "--yes", env={**env(booking, "prometheus"), "COLUMNS": "250"}, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr
    assert "died during force-expire" in rerun.stdout and f"{committed} rows" in rerun.stdout
    assert _expired(booking, schedule) == 40
    stored = booking.scalar(
        "SELECT result FROM remediation_audit WHERE audit_id > :b AND step = 'force-expire'"
        " AND action = 'force_expire' ORDER BY audit_id LIMIT 1",
        b=before,
    )
    assert stored == "interrupted"
    booking.release_holds()


def test_b2_dry_run_print_shows_the_statements_it_rolled_back(cli: CliRunner, booking: Backend) -> None:
    booking.release_holds()
    booking.preset("legacy")
    schedule = booking.overdue_holds(12)
    code, dry = apply(cli, booking, "b2", "--dry-run", "--print", "--batch-size", "5")
    assert code == 0
    statements = step(dry, "force-expire")["statements"]
    assert any(s.startswith("UPDATE reservation SET status") for s in statements), statements
    writes = step(dry, "reschedule-mode")["statements"]
    assert any(s.startswith("settings write: expiry_consumer_mode = reschedule") for s in writes), writes
    assert booking.scalar(OVERDUE, s=schedule) == 12
    refused = cli("b2", "--apply", "--print", env=env(booking, "prometheus"))
    assert refused.returncode == 3 and "--dry-run" in refused.stderr
    booking.release_holds()


def test_b2_force_expire_killed_mid_run_ends_like_an_uninterrupted_run(
    cli: CliRunner, booking: Backend
) -> None:
    booking.release_holds()
    booking.preset("legacy")
    schedule = booking.overdue_holds(3000)
    not_due = booking.hold(9602, booking.new_schedule(), 1)
    overdue = [
        (r[0], r[1])
        for r in booking.rows(
            "SELECT reservation_id, user_id FROM reservation WHERE schedule_id = :s", s=schedule
        )
    ]
    stop = threading.Event()
    answers: list[int] = []

    def pay_late() -> None:  # users paying holds that are already past their expiry, during the run
        i = 0
        while not stop.is_set():
            rid, user = overdue[i % len(overdue)]
            answers.append(booking.post("/payments", {"reservation_id": rid, "user_id": user}).status_code)
            i += 1

    payer = threading.Thread(target=pay_late)
    payer.start()
    try:
        proc = subprocess.Popen(
            [CONCERTOPS, "b2", "--apply", "--yes", "--batch-size", "20", "--sleep", "0.02"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env(booking, "prometheus")},
        )
        expired = "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'EXPIRED'"
        wait_for(
            lambda: booking.scalar(expired, s=schedule) >= 300, timeout=60, interval=0.05, what="300 expired"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left = booking.scalar(OVERDUE, s=schedule)
        assert 0 < left < 3000  # killed mid-run
        consistent(booking)
        code, done = apply(cli, booking, "b2", "--apply", "--yes")  # the lock died with the killed run
    finally:
        stop.set()
        payer.join()
    assert code == 0, done
    assert step(done, "force-expire")["affected"] == left
    assert booking.scalar(OVERDUE, s=schedule) == 0
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM seat WHERE schedule_id = :s AND status = 'AVAILABLE'", s=schedule
        )
        == 3000
    )
    assert booking.scalar("SELECT status FROM reservation WHERE reservation_id = :r", r=not_due) == "HELD"
    assert set(answers) <= {409} and answers  # a late payment never confirmed an overdue hold
    consistent(booking)
    booking.release_holds()


def test_b3_kills_only_the_apps_idle_connections(cli: CliRunner, booking: Backend) -> None:
    """The service's own database user is the app user (the profile's, as in production): its connections
    asleep for over 10 s are the victims. Another user's idle connection, the app user's busy query and the
    tool's own connections survive; pools reconnect on their next checkout (pre-ping)."""
    booking.preset("legacy")  # the default pool of 10
    database = booking.engine.url.database
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        for host in ("%", "localhost"):
            cur.execute(f"CREATE USER IF NOT EXISTS 'reporting'@'{host}' IDENTIFIED BY 'pw-reporting'")
            cur.execute(f"GRANT ALL ON `{database}`.* TO 'reporting'@'{host}'")
    admin.close()

    def connect(user: str, password: str = "") -> pymysql.Connection:
        return pymysql.connect(host=HOST, port=MARIADB_PORT, user=user, password=password, database=database)

    # Over 50 idle app connections (B-3's warning), one other user's, and one app query that is busy.
    idle = [connect("root") for _ in range(55)]
    other = connect("reporting", "pw-reporting")
    busy = connect("root")
    busy_thread = threading.Thread(target=lambda: busy.cursor().execute("SELECT SLEEP(40)"))
    busy_thread.start()
    time.sleep(11)  # asleep for over 10 s
    code, detected = check(cli, booking, "prometheus", "B-3")
    assert finding(detected, "B-3", "idle_connections")["status"] == "WARNING"

    code, dry = apply(cli, booking, "b3", "--dry-run", "--max-kills", "200")
    assert step(dry, "kill-idle")["affected"] >= len(idle)
    assert all(alive(c) for c in idle)  # dry: nobody killed
    time.sleep(11)  # the pings woke them: asleep again for over 10 s

    code, done = apply(cli, booking, "b3", "--apply", "--yes", "--max-kills", "200")
    assert step(done, "kill-idle")["affected"] >= len(idle), done["steps"]
    assert not any(alive(c) for c in idle)
    assert alive(other)  # another user's idle connection
    busy_thread.join()
    assert alive(busy)  # the busy query was not idle
    assert code == 0, json.dumps(done["after"], indent=1)
    for conn in (other, busy):
        conn.close()
    assert booking.scalar("SELECT 1") == 1  # the harness's pool reconnects


def test_b4_dropped_events_rebuilt_and_delivered_once(
    cli: CliRunner, booking: Backend, broker: Broker
) -> None:
    booking.preset("legacy", producer_disconnect_after_s=1)
    schedule = booking.new_schedule()
    holds = [booking.hold(9701 + i, schedule, 1 + i) for i in range(5)]
    broker.stop()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [0.0, 0.0], timeout=15, what="disconnect"
    )
    paid = [
        booking.post("/payments", {"reservation_id": r, "user_id": 9701 + i}).json()
        for i, r in enumerate(holds)
    ]
    payments = [int(p["paymentId"]) for p in paid]
    broker.start()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0], timeout=20, what="reconnect"
    )
    wait_counter_scraped(booking, "kafka_events_skipped_total")
    code, detected = check(cli, booking, "prometheus", "B-4")
    assert finding(detected, "B-4", "skipped_events")["status"] == "CRITICAL"
    notified = "SELECT COUNT(*) FROM notification WHERE payment_id IN :p"

    code, done = apply(cli, booking, "b4", "--apply", "--yes")
    assert code == 0, json.dumps(done["after"], indent=1)
    assert step(done, "republish-window")["result"] == "ok"
    wait_for(lambda: _count(booking, notified, payments) == 5, timeout=30, what="5 notifications")
    time.sleep(2)
    assert _count(booking, notified, payments) == 5  # once each (the table's key is the event id)
    assert booking.metric_all(
        "booking_setting_info", {"name": "producer_disconnected", "value": "buffer"}
    ) == [1.0, 1.0]


def _count(booking: Backend, sql: str, ids: list[int]) -> int:
    with booking.engine.connect() as conn:
        return int(
            conn.execute(sa.text(sql).bindparams(sa.bindparam("p", expanding=True)), {"p": ids}).scalar_one()
        )


def test_b1_outage_payments_get_their_events(cli: CliRunner, booking: Backend, broker: Broker) -> None:
    booking.preset("legacy", kafka_send_timeout_ms=500, producer_disconnect_after_s=300)
    schedule = booking.new_schedule()
    holds = [booking.hold(9801 + i, schedule, 1 + i) for i in range(3)]
    broker.stop()
    try:
        for i, reservation in enumerate(holds):
            assert (
                booking.post("/payments", {"reservation_id": reservation, "user_id": 9801 + i}).status_code
                == 500
            )
    finally:
        broker.start()
    payments = [
        r[0]
        for r in booking.rows(
            "SELECT payment_id FROM payment WHERE reservation_id IN (:a, :b, :c)",
            a=holds[0],
            b=holds[1],
            c=holds[2],
        )
    ]
    assert len(payments) == 3  # committed, though the user saw a 500
    # As seen two minutes into the incident: the payments are older than the notification delay.
    with booking.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE payment SET created_at = created_at - INTERVAL 2 MINUTE WHERE payment_id IN :p"
            ).bindparams(sa.bindparam("p", expanding=True)),
            {"p": payments},
        )
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0], timeout=20, what="reconnect"
    )
    wait_counter_scraped(booking, "kafka_producer_error_total")
    code, detected = check(cli, booking, "prometheus", "B-1")
    # (Whether the payments show as unnotified depends on the producer: a send that answered 500 after
    # 0.5 s may still be delivered once the broker is back. The errors are certain.)
    assert code == 2 and finding(detected, "B-1", "producer_errors")["status"] == "CRITICAL"

    code, done = apply(cli, booking, "b1", "--apply", "--yes")
    assert code == 0, json.dumps(done["after"], indent=1)
    assert [s["id"] for s in done["steps"]][:2] == ["outbox-mode", "republish-missed"]
    assert booking.metric_all("booking_setting_info", {"name": "publish_mode", "value": "outbox"}) == [
        1.0,
        1.0,
    ]
    wait_for(
        lambda: _count(booking, "SELECT COUNT(*) FROM notification WHERE payment_id IN :p", payments) == 3,
        timeout=30,
        what="notifications",
    )


def test_republish_survives_a_broker_killed_mid_run(cli: CliRunner, booking: Backend, broker: Broker) -> None:
    """5000 payments nobody was notified of; the broker (memory only: it loses what it held) dies while
    concertops and the service's relay are both sending them. A rerun completes, and every payment is
    notified exactly once: events acknowledged before the crash but lost with the broker are queued again."""
    booking.preset("legacy", producer_disconnect_after_s=300)
    payments = booking.unnotified_payments(5000)
    assert len(payments) == 5000
    proc = _spawn(
        booking, "b1", "--apply", "--yes", "--max-events", "20000", "--batch", "50", "--format", "json"
    )
    notified = "SELECT COUNT(*) FROM notification WHERE payment_id IN :p"
    # The first notifications mean events are flowing: the broker dies now, mid-run.
    wait_for(lambda: _count(booking, notified, payments) > 0, timeout=60, interval=0.01, what="first events")
    broker.stop()
    at_stop = _count(booking, notified, payments)
    out, err = proc.communicate(timeout=180)
    broker.start()
    assert at_stop < 5000, "the broker died after everything was delivered: not a mid-run crash"
    first = json.loads(out)
    assert step(first, "republish-missed")["detail"], err
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0], timeout=20, what="reconnect"
    )
    _, done = apply(cli, booking, "b1", "--apply", "--yes", "--max-events", "20000")
    assert step(done, "republish-missed")["result"] == "ok", done["steps"]
    wait_for(lambda: _count(booking, notified, payments) == 5000, timeout=120, what="5000 notifications")
    unsent = "SELECT COUNT(*) FROM outbox_event WHERE status <> 'PUBLISHED' AND aggregate_id IN :p"
    assert _count(booking, unsent, [str(p) for p in payments]) == 0


@pytest.fixture(autouse=True)
def _brokers_back(broker: Broker) -> None:
    """Every test here may stop the broker; each starts with it running."""
    broker.start()


def test_republish_waits_for_rows_another_sender_holds(booking: Backend) -> None:
    """The service's relay can hold every PENDING row (FOR UPDATE SKIP LOCKED) when re-publish starts: it
    waits for them to come free, then sends them (a game day saw it fail on its second batch instead)."""
    from datetime import UTC, datetime

    from concertops.config import Profile
    from concertops.contract.events import outbox_row
    from concertops.contract.names import TOPIC_PAYMENT_COMPLETED
    from concertops.contract.schema import outbox_event
    from concertops.engine.action_api import Context
    from concertops.engine.outbox_relay import Outbox
    from concertops.sources.producer import Producer

    event = f"gameday-race-{time.time_ns()}"
    at = datetime.now(UTC).replace(tzinfo=None)
    with booking.engine.begin() as conn:
        conn.execute(
            outbox_event.insert().values(**outbox_row(TOPIC_PAYMENT_COMPLETED, 1, {"event_id": event}, at))
        )
    holder = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", database=booking.engine.url.database)
    holder.begin()
    holder.cursor().execute("SELECT * FROM outbox_event WHERE event_id = %s FOR UPDATE", (event,))
    release = threading.Timer(1.5, holder.rollback)  # the other sender lets go
    release.start()
    profile = Profile(
        name="tests", kafka_bootstrap_servers=BOOTSTRAP, database_url=str(booking.profile.database_url)
    )
    ctx = Context(profile, booking.engine, dry_run=False, operator="t", reason="t")
    relay = Outbox(ctx.shape, TOPIC_PAYMENT_COMPLETED)
    _, failed, _ = relay.publish(ctx, Producer(BOOTSTRAP), [event], 10, 100.0, lambda _sent: None)
    release.join()
    holder.close()
    assert failed == 0
    # Sent by re-publish or by the service's relay, whichever took the row first.
    assert booking.scalar("SELECT status FROM outbox_event WHERE event_id = :e", e=event) == "PUBLISHED"
