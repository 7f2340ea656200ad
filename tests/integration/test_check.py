"""Detection on the real stack, run as a user would (the `concertops` command): healthy and faulty cases,
through Prometheus and again with Prometheus not answering (direct scrape)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from checking import (
    QUIET_WINDOW,
    check,
    env,
    finding,
    promql,
    settled,
    wait_counter_scraped,
    wait_no_server_errors,
    wait_scraped,
)
from cli_runner import CliRunner
from harness import Backend, Broker, wait_for


@pytest.mark.quick  # sql, Prometheus and the direct scrape
@pytest.mark.parametrize("mode", ["prometheus", "direct"])
def test_b2_overdue_holds_found_with_their_rows(cli: CliRunner, booking: Backend, mode: str) -> None:
    booking.release_holds()
    # The recommended sweep (every 10 s) would expire the overdue hold below before the check sees it.
    booking.wait_applied(booking.set(expiry_sweep_interval_s=0))
    code, healthy = check(cli, booking, mode, "B-2")
    assert finding(healthy, "B-2", "overdue_holds")["status"] == "OK"
    reservation = booking.hold(8100 if mode == "direct" else 8000, booking.new_schedule(), 1)
    # A hold whose expiry event was lost: overdue and still HELD (as after the legacy consumer's restart).
    with booking.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE reservation SET held_expires_at = NOW() - INTERVAL 5 MINUTE WHERE reservation_id = :r"
            ),
            {"r": reservation},
        )
    code, faulty = check(cli, booking, mode, "b2")
    overdue = finding(faulty, "B-2", "overdue_holds")
    assert code == 1 and faulty["status"] == "WARNING"
    assert overdue["status"] == "WARNING" and overdue["value"] == 1.0 and overdue["threshold"] == 0.0
    assert overdue["source"] == "sql" and "held_expires_at" in overdue["query"]
    assert overdue["rows"][0][0] == reservation  # the manual's columns, oldest first
    plan = next(r for r in faulty["runbooks"] if r["id"] == "B-2")["plan"]
    assert plan[0]["id"] == "force-expire" and plan[0]["limits"]["batch"] == 5000
    expected_mode = "prometheus" if mode == "prometheus" else "degraded: direct scrape"
    assert faulty["mode"].startswith(expected_mode)
    booking.release_holds()


@pytest.mark.parametrize("mode", ["prometheus", "direct"])
def test_b4_drop_policy_and_disconnected_producer(
    cli: CliRunner, booking: Backend, broker: Broker, mode: str
) -> None:
    if mode == "prometheus":
        settled(booking)
    code, healthy = check(cli, booking, mode, "B-4")
    assert finding(healthy, "B-4", "skip_policy")["status"] == "OK"
    assert finding(healthy, "B-4", "producer_connected")["status"] == "OK"
    booking.preset("legacy", producer_disconnect_after_s=1)
    broker.stop()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [0.0, 0.0], timeout=15, what="disconnect"
    )
    if mode == "prometheus":
        wait_scraped(booking, "min(kafka_producer_connected)", 0.0)
    code, faulty = check(cli, booking, mode, "B-4")
    connected = finding(faulty, "B-4", "producer_connected")
    assert code == 2 and connected["status"] == "CRITICAL" and connected["value"] == 0.0
    assert finding(faulty, "B-4", "skip_policy")["value"] == 2.0  # both instances set to drop
    assert "lost right now" in next(r for r in faulty["runbooks"] if r["id"] == "B-4")["verdict"]
    broker.start()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0], timeout=20, what="reconnect"
    )


def test_an_unreachable_source_makes_only_its_signals_unknown(cli: CliRunner, booking: Backend) -> None:
    environment = {**env(booking, "prometheus"), "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    done = cli("check", "B-2", "--format", "json", env=environment)
    document = json.loads(done.stdout)
    assert finding(document, "B-2", "expiry_lag")["status"] == "UNKNOWN"
    assert finding(document, "B-2", "overdue_holds")["status"] == "OK"
    assert done.returncode == 0  # the measured signals decide; UNKNOWN alone would be 3
    assert document["sources"]["kafka"] != "ok"


def test_table_view_reads_well(cli: CliRunner, booking: Backend) -> None:
    done = cli("check", env=env(booking, "prometheus"))
    assert done.returncode in (0, 1, 2), done.stderr
    assert "concertops check — prometheus" in done.stdout
    for runbook_id in ("A-1", "A-2", "A-3", "B-1", "B-2", "B-3", "B-4"):
        assert runbook_id in done.stdout


def test_a1_lock_waiters_draining_the_pool(cli: CliRunner, booking: Backend) -> None:
    booking.preset("legacy", db_query_delay_ms=400, max_active_tokens=200)
    schedule = booking.new_schedule()
    tokens = booking.active_tokens([8200 + i for i in range(60)])
    code, healthy = check(cli, booking, "direct", "B-3")
    # (Pool timeouts look back 5 minutes, where the backend tests' legacy faults still are.)
    assert finding(healthy, "B-3", "connection_share")["status"] == "OK"
    assert finding(healthy, "B-3", "idle_connections")["status"] == "OK"
    during: dict[str, dict] = {}

    def checked_while_drained(_seen: dict[int, int]) -> bool:
        """Once both instances' pools are full, the check runs while the crowd keeps them full."""
        pools = zip(
            booking.metric_all("mysql_connection_pool_active"),
            booking.metric_all("mysql_connection_pool_size"),
            strict=True,
        )
        if not all(size and active / size >= 0.8 for active, size in pools):
            return False
        during["direct"] = check(cli, booking, "direct", "A-1", "B-3")[1]
        return True

    booking.crowd(
        tokens, {"schedule_id": schedule, "seat_no": 1}, checked_while_drained, "the pools to be drained"
    )
    # While the crowd ran, both instances' pools were full (direct scrape, summed before dividing).
    assert finding(during["direct"], "A-1", "pool_usage")["value"] >= 0.8
    drained = finding(during["direct"], "B-3", "pool_usage")
    assert drained["status"] in ("WARNING", "CRITICAL") and drained["source"].startswith("direct scrape")
    # Afterwards Prometheus shows what it did: lock errors and a p95 of seconds over the last minute.
    wait_counter_scraped(booking, "distributed_lock_acquisition_errors_total")
    code, after = check(cli, booking, "prometheus", "A-1")
    assert code == 2
    assert finding(after, "A-1", "p95_latency")["status"] == "CRITICAL"
    assert finding(after, "A-1", "lock_errors")["status"] in ("WARNING", "CRITICAL")
    assert (
        "sum(rate(distributed_lock_acquisition_errors_total[1m]))"
        in finding(after, "A-1", "lock_errors")["query"]
    )
    # The same burst is B-3's symptom: requests that found no pooled connection (503).
    wait_counter_scraped(booking, "mysql_connection_pool_timeouts_total")
    code, pool = check(cli, booking, "prometheus", "B-3")
    assert code == 2 and finding(pool, "B-3", "pool_timeouts")["status"] == "CRITICAL"
    assert "size the pool explicitly" in next(r for r in pool["runbooks"] if r["id"] == "B-3")["verdict"]


def test_a2_sell_out_is_reported_as_business_not_incident(cli: CliRunner, booking: Backend) -> None:
    wait_no_server_errors()
    schedule = booking.new_schedule(seats=2)
    for seat in (1, 2):
        booking.hold(8300 + seat, schedule, seat)
    retrying = booking.active_token(8399)
    # A user retrying a sold-out show, fast enough to outweigh the earlier tests' traffic in the 1 m window.
    with ThreadPoolExecutor(8) as pool:
        refused = list(
            pool.map(
                lambda i: booking.post(
                    "/reservations", {"schedule_id": schedule, "seat_no": 1 + i % 2}, retrying
                ),
                range(400),
            )
        )
    assert {r.status_code for r in refused} == {409}
    wait_counter_scraped(booking, "http_requests_total")
    code, document = check(cli, booking, "prometheus", "A-2", window=QUIET_WINDOW)
    result = next(r for r in document["runbooks"] if r["id"] == "A-2")
    assert code == 1 and result["status"] == "WARNING"
    assert finding(document, "A-2", "conflict_share")["value"] > 0.3
    assert finding(document, "A-2", "server_error_share")["status"] == "OK"
    assert result["verdict"].startswith("business sell-out, not an incident")
    sold_out = finding(document, "A-2", "sold_out_schedules")
    assert sold_out["value"] >= 1 and sold_out["source"] == "sql"


def test_b1_broker_outage_failing_payments(cli: CliRunner, booking: Backend, broker: Broker) -> None:
    booking.preset("legacy", kafka_send_timeout_ms=1500, producer_disconnect_after_s=300)
    schedule = booking.new_schedule()
    reservations = [booking.hold(8401 + i, schedule, 1 + i) for i in range(2)]
    settled(booking)
    code, healthy = check(cli, booking, "prometheus", "B-1")
    # (The producer-error rate looks back 5 minutes, where earlier tests' outages still are.)
    assert finding(healthy, "B-1", "double_payments")["status"] == "OK"
    assert finding(healthy, "B-1", "outbox_backlog")["status"] == "OK"
    broker.stop()
    for i, reservation in enumerate(reservations):
        paid = booking.post("/payments", {"reservation_id": reservation, "user_id": 8401 + i})
        assert paid.status_code == 500
        # Two scrapes apart: a 5xx series that first appears already at 1 shows no increase to rate().
        wait_counter_scraped(booking, "kafka_producer_error_total")
    code, faulty = check(cli, booking, "prometheus", "B-1")
    assert code == 2
    assert finding(faulty, "B-1", "producer_errors")["status"] == "CRITICAL"
    assert finding(faulty, "B-1", "payment_server_errors")["status"] == "CRITICAL"
    result = next(r for r in faulty["runbooks"] if r["id"] == "B-1")
    assert "pay again" in result["verdict"] and result["plan"][0]["id"] == "outbox-mode"


def test_b1_outage_by_direct_scrape_while_payments_fail(
    cli: CliRunner, booking: Backend, broker: Broker
) -> None:
    """Without Prometheus the failure rates come from two scrapes a second apart, so payments must be
    failing while the check runs: two users' streams of payments, each answered 500 after 200 ms."""
    booking.preset("legacy", kafka_send_timeout_ms=200, producer_disconnect_after_s=300)
    schedule = booking.new_schedule(seats=24)
    users = [8451 + i for i in range(24)]
    tokens = booking.active_tokens(users)
    reservations = [
        int(
            booking.post("/reservations", {"schedule_id": schedule, "seat_no": 1 + i}, t).json()[
                "reservationId"
            ]
        )
        for i, t in enumerate(tokens)
    ]
    broker.stop()
    answers: list[int] = []

    def pay(stream: int) -> None:
        for i in range(stream, len(reservations), 2):
            body = {"reservation_id": reservations[i], "user_id": users[i]}
            answers.append(booking.post("/payments", body, instance=stream).status_code)

    payers = [threading.Thread(target=pay, args=(stream,)) for stream in (0, 1)]
    for payer in payers:
        payer.start()
    try:
        time.sleep(0.3)
        code, faulty = check(cli, booking, "direct", "B-1")
    finally:
        for payer in payers:
            payer.join()
        broker.start()
    assert answers == [500] * len(reservations)
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0], timeout=20, what="reconnect"
    )
    assert faulty["mode"].startswith("degraded: direct scrape")
    assert code == 2
    errors = finding(faulty, "B-1", "producer_errors")
    assert errors["status"] == "CRITICAL" and errors["source"].startswith("direct scrape")
    assert errors["value"] > 0
    failing = finding(faulty, "B-1", "payment_server_errors")
    assert failing["status"] == "CRITICAL" and failing["value"] == 1.0


def test_a_quiet_service_reads_healthy_by_direct_scrape(cli: CliRunner, booking: Backend) -> None:
    """Every live signal of every runbook is OK on an idle service with the recommended settings. (The SQL
    signals keep the history of earlier tests in this run's database; their healthy cases are above.)"""
    booking.release_holds()
    _, document = check(cli, booking, "direct")
    assert document["mode"].startswith("degraded: direct scrape")
    live = [
        (r["id"], f["signal"], f["status"], f["value"])
        for r in document["runbooks"]
        for f in r["findings"]
        if f["source"].startswith("direct scrape")
    ]
    assert {runbook for runbook, *_ in live} == {"A-1", "A-2", "A-3", "B-1", "B-2", "B-3", "B-4"}
    assert [entry for entry in live if entry[2] != "OK"] == []


@pytest.mark.parametrize("mode", ["prometheus", "direct"])
def test_a3_tokens_waiting_for_the_polling_run(cli: CliRunner, booking: Backend, mode: str) -> None:
    if mode == "prometheus":
        settled(booking)
    code, healthy = check(cli, booking, mode, "A-3")
    assert finding(healthy, "A-3", "event_activation")["status"] == "OK"
    # Legacy: polling only; one ACTIVE slot taken, so everyone after waits for a slot the poller never frees.
    booking.preset("legacy", max_active_tokens=1, queue_activation_interval_s=5)
    booking.active_token(8500)
    for user in range(8501, 8511):
        booking.post("/queue/tokens", {"user_id": user})
    # The gauge is set by whichever instance runs the activation; the other keeps its last value, which may
    # be an earlier test's. Past 10 s plus one activation interval in the store itself, every run since
    # has set the gauge above 10 s, so the highest of them is no stale value.
    oldest = (
        "SELECT TIMESTAMPDIFF(SECOND, MIN(created_at), UTC_TIMESTAMP())"
        " FROM queue_token WHERE status = 'WAITING'"
    )
    wait_for(
        lambda: (booking.scalar(oldest) or 0) > 16, timeout=40, what="the oldest WAITING token to pass 16 s"
    )
    wait_for(
        lambda: max(booking.metric_all("queue_oldest_waiting_age_seconds")) > 10,
        timeout=30,
        what="the gauge of the oldest WAITING token to pass 10 s",
    )
    if mode == "prometheus":
        wait_scraped(booking, 'min(booking_setting_value{name="event_activation"})', 0.0)
        wait_for(
            lambda: (promql("max(queue_oldest_waiting_age_seconds)") or 0) > 10,
            timeout=20,
            what="Prometheus to see the old token",
        )
    code, faulty = check(cli, booking, mode, "A-3")
    result = next(r for r in faulty["runbooks"] if r["id"] == "A-3")
    assert code == 1 and result["status"] == "WARNING"
    assert finding(faulty, "A-3", "oldest_waiting")["status"] == "WARNING", finding(
        faulty, "A-3", "oldest_waiting"
    )
    assert finding(faulty, "A-3", "event_activation")["value"] == 0.0
    assert "event activation is off" in result["verdict"] and result["plan"][0]["id"] == "event-activation"
    booking.release_tokens()


def test_a2_sell_out_by_direct_scrape_while_users_retry(cli: CliRunner, booking: Backend) -> None:
    """Without Prometheus a rate is measured between two scrapes a second apart: the retries must be
    happening then, as they would be during a real sell-out."""
    schedule = booking.new_schedule(seats=1)
    booking.hold(8601, schedule, 1)
    retrying = booking.active_token(8602)
    stop = threading.Event()

    def retry() -> None:
        while not stop.is_set():
            booking.post("/reservations", {"schedule_id": schedule, "seat_no": 1}, retrying, instance=0)

    users = [threading.Thread(target=retry) for _ in range(4)]
    for user in users:
        user.start()
    try:
        time.sleep(0.5)
        code, document = check(cli, booking, "direct", "A-2")
    finally:
        stop.set()
        for user in users:
            user.join()
    result = next(r for r in document["runbooks"] if r["id"] == "A-2")
    assert document["mode"].startswith("degraded: direct scrape")
    assert finding(document, "A-2", "conflict_share")["value"] > 0.3
    assert finding(document, "A-2", "server_error_share")["status"] == "OK"
    assert code == 1 and result["verdict"].startswith("business sell-out, not an incident")
