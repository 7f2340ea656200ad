"""Events on the real broker: outbox delivery across a broker restart, expiry, and the DLQ."""

from __future__ import annotations

import json
import time
import uuid

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from harness import BOOTSTRAP, Backend, Broker, wait_for

from concertops.contract.names import TOPIC_EXPIRATION, TOPIC_EXPIRATION_DLQ


def _find(topic: str, key: bytes, timeout: float = 20.0) -> Message | None:
    """Read every partition of ``topic`` from the start, looking for a message with ``key``."""
    partitions = (
        AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(topic, timeout=5).topics[topic].partitions
    )
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key() == key:
                return msg
    finally:
        consumer.close()
    return None


def test_outbox_delivers_every_event_after_a_broker_restart(booking: Backend, broker: Broker) -> None:
    schedule = booking.new_schedule(seats=10)
    reservations = [booking.hold(5000 + i, schedule, i + 1) for i in range(5)]
    broker.stop()
    # In outbox mode a broker outage never fails a payment.
    for i, reservation in enumerate(reservations):
        paid = booking.post("/payments", {"reservation_id": reservation, "user_id": 5000 + i}, instance=i % 2)
        assert paid.status_code == 201, paid.text
    payment_ids = [
        r[0]
        for r in booking.rows(
            "SELECT payment_id FROM payment WHERE reservation_id IN :ids", ids=tuple(reservations)
        )
    ]
    assert len(payment_ids) == 5
    pending = booking.scalar(
        "SELECT COUNT(*) FROM outbox_event WHERE topic = 'payment.completed' "
        "AND aggregate_id IN :ids AND status = 'PENDING'",
        ids=tuple(str(p) for p in payment_ids),
    )
    assert pending == 5
    broker.start()
    wait_for(
        lambda: booking.scalar("SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'") == 0,
        timeout=60,
        what="the relay to publish the backlog",
    )
    wait_for(
        lambda: (
            booking.scalar(
                "SELECT COUNT(*) FROM notification WHERE payment_id IN :ids", ids=tuple(payment_ids)
            )
            == 5
        ),
        timeout=60,
        what="the notification consumer to record every payment",
    )
    # Each event recorded once, however often it was delivered.
    assert (
        booking.scalar(
            "SELECT COUNT(DISTINCT event_id) FROM notification WHERE payment_id IN :ids",
            ids=tuple(payment_ids),
        )
        == 5
    )


def test_expiry_through_the_consumer(booking: Backend) -> None:
    booking.set(hold_ttl_s=2, expiry_sweep_interval_s=0)
    schedule = booking.new_schedule()
    reservation = booking.hold(6001, schedule, 1)
    before = sum(booking.metric_all("reservation_expired_total", {"via": "consumer"}))
    wait_for(
        lambda: (
            booking.scalar("SELECT status FROM reservation WHERE reservation_id = :r", r=reservation)
            == "EXPIRED"
        ),
        timeout=30,
        what="the consumer to expire the hold",
    )
    assert (
        booking.scalar("SELECT status FROM seat WHERE schedule_id = :s AND seat_no = 1", s=schedule)
        == "AVAILABLE"
    )
    assert sum(booking.metric_all("reservation_expired_total", {"via": "consumer"})) == before + 1


def test_expiry_through_the_sweep_when_no_message_exists(booking: Backend) -> None:
    booking.set(expiry_sweep_interval_s=1)
    schedule = booking.new_schedule()
    with booking.engine.begin() as conn:
        # A hold whose expiry message was lost: only the sweep can release it.
        conn.exec_driver_sql(
            "INSERT INTO reservation (user_id, schedule_id, seat_no, seat_id, status, held_expires_at,"
            " created_at, updated_at) SELECT 6101, schedule_id, seat_no, seat_id, 'HELD',"
            " UTC_TIMESTAMP() - INTERVAL 1 MINUTE, UTC_TIMESTAMP(), UTC_TIMESTAMP()"
            f" FROM seat WHERE schedule_id = {schedule} AND seat_no = 2"
        )
        conn.exec_driver_sql(
            f"UPDATE seat SET status = 'HELD', reservation_id = LAST_INSERT_ID() "
            f"WHERE schedule_id = {schedule} AND seat_no = 2"
        )
    wait_for(
        lambda: (
            booking.scalar(
                "SELECT COUNT(*) FROM reservation WHERE schedule_id = :s AND status = 'HELD'", s=schedule
            )
            == 0
        ),
        timeout=10,
        what="the sweep to expire the overdue hold",
    )
    assert (
        booking.scalar("SELECT status FROM seat WHERE schedule_id = :s AND seat_no = 2", s=schedule)
        == "AVAILABLE"
    )


def test_a_poisoned_expiry_message_goes_to_the_dlq(booking: Backend) -> None:
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    before = sum(booking.metric_all("reservation_expiry_dlq_total"))
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    producer.produce(TOPIC_EXPIRATION, key=marker.encode(), value=b'{"reservation_id": "not a number"')
    assert producer.flush(10) == 0
    wait_for(
        lambda: sum(booking.metric_all("reservation_expiry_dlq_total")) == before + 1,
        timeout=30,
        what="the poisoned message to be dead-lettered",
    )
    found = _find(TOPIC_EXPIRATION_DLQ, marker.encode())
    assert found is not None, "the DLQ topic does not hold the poisoned message"
    headers = dict(found.headers() or [])
    assert headers.get("error")
    assert found.value() == b'{"reservation_id": "not a number"'
    json.dumps(headers["error"].decode())  # readable text
