"""The `legacy` preset fails the way the incident manual says the original service does."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import Backend, Broker, statuses, wait_for

from concertops.contract.manual_sql import OVERDUE_HOLDS
from concertops.contract.names import (
    CONSUMER_ASSIGNED,
    CONSUMER_LAG,
    EXPIRY_IN_FLIGHT,
    GROUP_EXPIRY,
    TOPIC_EXPIRATION,
)


def test_a1_b3_lock_waiters_hold_connections_until_the_pool_runs_dry(booking: Backend) -> None:
    # Seat queries as slow as on a loaded database; pool of 10, lock wait 3 s (the manual's "current" code).
    booking.preset("legacy", db_query_delay_ms=400, max_active_tokens=200)
    schedule = booking.new_schedule()
    tokens = booking.active_tokens([7000 + i for i in range(60)])
    peak = {"active": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["active"] = max(peak["active"], booking.metric("mysql_connection_pool_active"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(60) as pool:
            responses = list(
                pool.map(
                    lambda t: booking.post("/reservations", {"schedule_id": schedule, "seat_no": 1}, t),
                    tokens,
                )
            )
    finally:
        done.set()
        sampler.join()
    counts = statuses(responses)
    errors = {r.json()["error"] for r in responses if r.status_code >= 400}
    assert counts.get(201) == 1
    assert counts.get(503, 0) > 0, counts  # requests that found no pooled connection
    assert {"db_pool_exhausted", "lock_timeout"} <= errors, errors
    assert peak["active"] == 10.0  # every connection of the pool in use
    assert booking.metric("distributed_lock_acquisition_errors_total") > 0
    assert booking.metric("mysql_connection_pool_timeouts_total") > 0


def test_b2_blocking_consumer_loses_the_expiry_in_flight_on_restart(booking: Backend, broker: Broker) -> None:
    # Release every earlier hold: the recommended consumer then drops their circulating expiry messages, so
    # the blocking consumer below sleeps on this test's hold and not on an older one.
    booking.release_holds()
    wait_for(
        lambda: sum(booking.metric_all(CONSUMER_LAG, {"group": GROUP_EXPIRY})) == 0,
        timeout=30,
        what="the expiry topic to drain",
    )
    booking.preset("legacy", hold_ttl_s=20)
    # Fresh legacy instances, and their consumer group settled, before the hold is made.
    booking.restart()
    wait_for(
        lambda: (
            [n > 0 for n in booking.metric_all(CONSUMER_ASSIGNED, {"group": GROUP_EXPIRY})].count(True) == 1
        ),
        timeout=30,
        what="one instance to read the expiry topic",
    )
    committed_before = broker.committed(GROUP_EXPIRY, TOPIC_EXPIRATION)
    lost = booking.hold(7301, booking.new_schedule(), 1)
    wait_for(
        lambda: sum(booking.metric_all(EXPIRY_IN_FLIGHT)) == 1,
        timeout=20,
        what="a blocking expiry handler to sleep on the hold",
    )
    booking.restart()  # a deploy while the handler sleeps
    due = booking.scalar("SELECT held_expires_at FROM reservation WHERE reservation_id = :r", r=lost)
    wait_for(
        lambda: booking.scalar("SELECT NOW() > :due + INTERVAL 8 SECOND", due=due),
        timeout=40,
        what="the hold to be 8 s overdue",
    )
    # Nobody expires it: the message was committed on receipt, so the broker counts it consumed...
    assert broker.committed(GROUP_EXPIRY, TOPIC_EXPIRATION) > committed_before
    # ...and the seat stays HELD past its expiry, found by the manual's own diagnosis query.
    assert lost in {row.reservation_id for row in booking.rows(OVERDUE_HOLDS)}
    assert booking.metric_all(EXPIRY_IN_FLIGHT) == [0.0, 0.0]


def test_b1_broker_down_turns_a_committed_payment_into_a_500(booking: Backend, broker: Broker) -> None:
    booking.preset("legacy", kafka_send_timeout_ms=1500, producer_disconnect_after_s=300)
    schedule = booking.new_schedule()
    reservation = booking.hold(7101, schedule, 1)
    errors_before = booking.metric("kafka_producer_error_total")
    broker.stop()
    response = booking.post("/payments", {"reservation_id": reservation, "user_id": 7101})
    assert response.status_code == 500
    # ...yet the payment is committed and the reservation CONFIRMED: the user will pay again.
    assert booking.scalar("SELECT COUNT(*) FROM payment WHERE reservation_id = :r", r=reservation) == 1
    assert (
        booking.scalar("SELECT status FROM reservation WHERE reservation_id = :r", r=reservation)
        == "CONFIRMED"
    )
    assert booking.metric("kafka_producer_error_total") > errors_before


def test_b4_disconnected_producer_drops_events_silently(booking: Backend, broker: Broker) -> None:
    booking.preset("legacy", producer_disconnect_after_s=1)
    schedule = booking.new_schedule()
    reservation = booking.hold(7201, schedule, 1)
    skipped_before = sum(booking.metric_all("kafka_events_skipped_total"))
    broker.stop()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [0.0, 0.0],
        timeout=15,
        what="the producers to count as disconnected",
    )
    response = booking.post("/payments", {"reservation_id": reservation, "user_id": 7201})
    assert response.status_code == 201  # the user sees success
    payment = booking.scalar("SELECT payment_id FROM payment WHERE reservation_id = :r", r=reservation)
    assert sum(booking.metric_all("kafka_events_skipped_total")) == skipped_before + 1
    broker.start()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0],
        timeout=20,
        what="the producers to reconnect",
    )
    time.sleep(3)
    # The event is gone: never published, never recorded anywhere, nobody notified.
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM outbox_event WHERE topic = 'payment.completed' AND aggregate_id = :p",
            p=str(payment),
        )
        == 0
    )
    assert booking.scalar("SELECT COUNT(*) FROM notification WHERE payment_id = :p", p=payment) == 0
