"""The instance's Kafka producer, and the two behaviours of the manual around it.

* ``publish_mode=direct`` (legacy): the payment request itself sends ``payment.completed`` after its DB
  commit and fails with 500 when the broker does not acknowledge in time (B-1).
* ``producer_disconnected=skip`` (legacy): while the producer counts as disconnected, a direct send logs
  "Kafka Producer is not connected, skipping message send" and returns as if all were well (B-4);
  ``buffer`` keeps the events in memory and flushes them on reconnect.

The producer counts as disconnected when it never reached the broker since start, or when the broker has
been unreachable for ``producer_disconnect_after_s``; a short outage therefore shows up as B-1 first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from concertops.booking.live_settings import LiveSettings
from concertops.booking.metrics import Metrics
from concertops.contract.kafka import producer_settings
from concertops.contract.names import TOPICS

log = logging.getLogger(__name__)
BUFFER_LIMIT = 100_000
DELIVERY_TIMEOUT_S = 10.0


class PublishError(Exception):
    """The broker did not acknowledge a message."""


@dataclass
class Message:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def producer_config(bootstrap: str) -> dict[str, Any]:
    return {
        **producer_settings(bootstrap),
        # Every message gets a delivery report within this time, so a caller can wait for the report
        # instead of giving up early and sending the same event again while the first copy is queued.
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
        "socket.timeout.ms": 5_000,
        "reconnect.backoff.max.ms": 1_000,
        "topic.metadata.refresh.interval.ms": 5_000,
    }


def consumer_config(bootstrap: str, group: str, max_poll_interval_s: int = 30) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        # Every handler commits explicitly, so what "committed" means is visible in its code.
        "enable.auto.commit": False,
        # A short session timeout: the broker holds a group join for it (45 s by default).
        "session.timeout.ms": 6_000,
        "heartbeat.interval.ms": 1_000,
        # Also the rebalance timeout a group join may wait for: keep it short unless a handler sleeps.
        "max.poll.interval.ms": max_poll_interval_s * 1000,
        "topic.metadata.refresh.interval.ms": 5_000,
    }


class Publisher:
    def __init__(self, bootstrap: str, metrics: Metrics, settings: LiveSettings) -> None:
        from confluent_kafka import Producer

        self.bootstrap = bootstrap
        self.metrics = metrics
        self.settings = settings
        self.producer = Producer(producer_config(bootstrap))
        self.connected = False
        # The last metadata request answered. Unlike ``connected`` it drops at once in an outage: the
        # relay holds back, so nothing queues up inside the client to be resent on reconnect.
        self.reachable = False
        self._ever_connected = False
        # Times the broker answered again after an outage: a restarted broker may have lost its log, so
        # consumers start over from its committed offsets when this changes.
        self.epoch = 0
        # One admin client for the producer's life: clients created and dropped on every reconnect, with
        # requests in flight, are a crash risk inside the native library.
        self._admin: Any = None
        self._unreachable_since: float | None = time.monotonic()
        self._buffer: deque[Message] = deque()
        self._lock = threading.Lock()
        metrics.producer_connected.set(0)

    # -- sending -----------------------------------------------------------------------------------
    def send_many(self, messages: list[Message], timeout_s: float) -> None:
        """Produce and wait (bounded) for each delivery report; each message's ``error`` tells its fate."""
        for msg in messages:
            self._produce(msg)
        deadline = time.monotonic() + timeout_s
        for msg in messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not msg.done.wait(remaining):
                msg.error = msg.error or f"no acknowledgement within {timeout_s:.1f}s"
        for msg in messages:
            if msg.error:
                self.metrics.producer_errors.labels(msg.topic).inc()

    def send(self, msg: Message, timeout_s: float) -> None:
        self.send_many([msg], timeout_s)
        if msg.error:
            raise PublishError(f"{msg.topic}: {msg.error}")

    def publish_direct(self, msg: Message) -> str:
        """The legacy request-path send. Returns 'sent', 'skipped' or 'buffered'; raises PublishError."""
        if not self.connected:
            if self.settings["producer_disconnected"] == "skip":
                log.warning("Kafka Producer is not connected, skipping message send (topic %s)", msg.topic)
                self.metrics.events_skipped.labels(msg.topic).inc()
                return "skipped"
            with self._lock:
                if len(self._buffer) >= BUFFER_LIMIT:
                    self.metrics.events_skipped.labels(msg.topic).inc()
                    return "skipped"
                self._buffer.append(msg)
                self.metrics.events_buffered.set(len(self._buffer))
            return "buffered"
        self.send(msg, self.settings.int("kafka_send_timeout_ms") / 1000)
        return "sent"

    def _produce(self, msg: Message) -> None:
        def on_delivery(err: Any, _record: Any) -> None:
            if err is not None:
                msg.error = str(err)
            msg.done.set()

        try:
            self.producer.produce(
                msg.topic,
                key=msg.key.encode(),
                value=msg.value,
                headers=list(msg.headers.items()),
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            msg.error = f"local queue full: {exc}"
            msg.done.set()
        except Exception as exc:  # KafkaException on a broken client: report it as this message's failure
            msg.error = str(exc)
            msg.done.set()

    # -- background ----------------------------------------------------------------------------------
    def run_poll(self, stop: threading.Event) -> None:
        """Serve delivery callbacks."""
        while not stop.is_set():
            self.producer.poll(0.1)

    def run_health(self, stop: threading.Event) -> None:
        """Decide ``connected`` from metadata requests, create the topics, flush the buffer on reconnect."""
        while not stop.is_set():
            reachable = self._reachable()
            now = time.monotonic()
            if reachable and not self.reachable:
                # A restarted broker may have lost its topics; create them before anything is sent, or the
                # first sends auto-create them concurrently (which the Tansu broker gets wrong).
                self.ensure_topics()
                self.epoch += 1
            self.reachable = reachable
            if reachable:
                if not self.connected:
                    log.info("Kafka producer connected")
                self.connected = self._ever_connected = True
                self._unreachable_since = None
                self._flush_buffer()
            else:
                self._unreachable_since = self._unreachable_since or now
                limit = self.settings.int("producer_disconnect_after_s")
                if not self._ever_connected or now - self._unreachable_since >= limit:
                    if self.connected:
                        log.warning("Kafka producer disconnected (broker unreachable for %ss)", limit)
                    self.connected = False
            self.metrics.producer_connected.set(1 if self.connected else 0)
            stop.wait(1.0)

    def _reachable(self) -> bool:
        try:
            self.producer.list_topics(timeout=1.0)
        except Exception:  # KafkaException: the broker did not answer
            return False
        return True

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def topic_id(self, topic: str) -> str | None:
        """The topic's id: new each time the topic is created, so it names one incarnation of its log."""
        from confluent_kafka import TopicCollection

        try:
            described = self.admin().describe_topics(TopicCollection([topic]))[topic].result(timeout=5)
        except Exception:  # KafkaException: broker away or no such topic yet
            return None
        return str(described.topic_id)

    def ensure_topics(self) -> None:
        from confluent_kafka.admin import NewTopic

        try:
            existing = set(self.admin().list_topics(timeout=2).topics)
            missing = [NewTopic(t, 1, 1) for t in TOPICS if t not in existing]
            for future in self.admin().create_topics(missing).values() if missing else []:
                try:
                    future.result(timeout=5)
                except Exception as exc:  # another instance created it first
                    log.debug("create topic: %s", exc)
        except Exception as exc:
            log.warning("cannot ensure topics: %s", exc)

    def _flush_buffer(self) -> None:
        with self._lock:
            pending, self._buffer = list(self._buffer), deque()
        if not pending:
            return
        for msg in pending:
            msg.done.clear()
            msg.error = None
        self.send_many(pending, 10.0)
        failed = [m for m in pending if m.error]
        with self._lock:
            self._buffer.extendleft(reversed(failed))
            self.metrics.events_buffered.set(len(self._buffer))
        log.info("flushed %d buffered events (%d failed)", len(pending) - len(failed), len(failed))

    def close(self) -> None:
        self.producer.flush(5)
