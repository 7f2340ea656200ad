"""Kafka signals through confluent-kafka: a consumer group's lag and a topic's depth.

Neither joins a group: committed offsets are read with OffsetFetch, watermarks with ListOffsets."""

from __future__ import annotations

from typing import Any

from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "kafka"


class KafkaSource:
    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self.bootstrap, self.timeout_s = bootstrap, timeout_s

    def observe(self, signal: Signal) -> Observation:
        query = signal.describe_query()
        try:
            value = self._lag(signal) if signal.kind == "kafka_lag" else self._depth(signal.topic)
        except Exception as exc:  # KafkaException, LookupError
            return Observation(signal.name, SOURCE, query, error=error_line(exc))
        return Observation(signal.name, SOURCE, query, value=float(value))

    def _client(self, group: str) -> Any:
        from confluent_kafka import Consumer

        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "socket.timeout.ms": int(self.timeout_s * 1000),
                "log_level": 0,  # a down broker is reported once, as this signal's error
            }
        )

    def _partitions(self, client: Any, topic: str) -> list[Any]:
        from confluent_kafka import TopicPartition

        found = client.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise LookupError(f"topic {topic} not found on {self.bootstrap}")
        return [TopicPartition(topic, p) for p in sorted(found.partitions)]

    def _lag(self, signal: Signal) -> int:
        client = self._client(signal.group)
        try:
            partitions = self._partitions(client, signal.topic)
            committed = client.committed(partitions, timeout=self.timeout_s)
            lag = 0
            for tp in committed:
                low, high = client.get_watermark_offsets(tp, timeout=self.timeout_s)
                # Nothing committed yet: everything still in the log is behind.
                position = tp.offset if tp.offset >= 0 else low
                lag += max(high - position, 0)
            return lag
        finally:
            client.close()

    def _depth(self, topic: str) -> int:
        client = self._client("concertops-depth")
        try:
            total = 0
            for tp in self._partitions(client, topic):
                low, high = client.get_watermark_offsets(tp, timeout=self.timeout_s)
                total += max(high - low, 0)
            return total
        finally:
            client.close()
