"""Producing to the service's broker from concertops (re-publish, DLQ replay), with the settings the
service's own producers use (``contract.kafka``) and a delivery report for every message."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from concertops.contract.kafka import producer_settings
from concertops.model.errors import SourceUnreachable
from concertops.redact import error_line

DELIVERY_TIMEOUT_S = 10.0


def config(bootstrap: str) -> dict[str, Any]:
    return {
        **producer_settings(bootstrap),
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
        "socket.timeout.ms": 5_000,
        "log_level": 0,
    }


@dataclass
class Outgoing:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    acked: bool = False


class Producer:
    def __init__(self, bootstrap: str | None) -> None:
        from confluent_kafka import Producer as Kafka

        if not bootstrap:
            raise SourceUnreachable("no Kafka configured", "set kafka_bootstrap_servers in the profile")
        self.bootstrap = bootstrap
        self.client = Kafka(config(bootstrap))

    def check(self, topics: tuple[str, ...], timeout_s: float = 5.0) -> None:
        """The broker answers and has ``topics``; SourceUnreachable naming what is missing otherwise."""
        try:
            found = self.client.list_topics(timeout=timeout_s).topics
        except Exception as exc:  # KafkaException: the broker did not answer
            raise SourceUnreachable(f"Kafka at {self.bootstrap} did not answer: {error_line(exc)}") from None
        missing = [t for t in topics if t not in found or found[t].error is not None]
        if missing:
            raise SourceUnreachable(
                f"topic(s) {', '.join(missing)} missing on {self.bootstrap}",
                "create them (the service does on start) before re-publishing",
            )

    def create_topic(self, topic: str, partitions: int, timeout_s: float = 10.0) -> None:
        """Create ``topic`` (replication 1); one that exists by now (created meanwhile) is fine."""
        from confluent_kafka import KafkaError
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        future = admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=timeout_s)[topic]
        try:
            future.result(timeout_s)
        except Exception as exc:  # KafkaException
            error = exc.args[0] if exc.args else None
            if getattr(error, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise SourceUnreachable(
                    f"creating {topic} on {self.bootstrap} failed: {error_line(exc)}", "create it yourself"
                ) from None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # the metadata catches up with the creation
            found = self.client.list_topics(timeout=timeout_s).topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return
            time.sleep(0.1)

    def send(self, messages: list[Outgoing], timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        """Produce all, wait for the delivery reports; each message's ``acked``/``error`` tells its fate."""

        def report(msg: Outgoing) -> Any:
            def callback(err: Any, _record: Any) -> None:
                msg.acked, msg.error = err is None, None if err is None else str(err)

            return callback

        for msg in messages:
            headers: dict[str, str | bytes | None] = dict(msg.headers)
            try:
                self.client.produce(
                    msg.topic, key=msg.key, value=msg.value, headers=headers, on_delivery=report(msg)
                )
            except BufferError:
                self.client.poll(1.0)
                self.client.produce(
                    msg.topic, key=msg.key, value=msg.value, headers=headers, on_delivery=report(msg)
                )
            self.client.poll(0)
        self.client.flush(timeout_s)
        for msg in messages:
            if not msg.acked and msg.error is None:
                msg.error = f"no acknowledgement within {timeout_s:g} s"
