"""Kafka signals through confluent-kafka: a consumer group's lag and a topic's depth, over every partition.

One admin client per probe serves every Kafka signal: the topics' metadata is read once, committed
offsets with OffsetFetch for any group (no group is joined), log offsets with ListOffsets."""

from __future__ import annotations

import threading
import time
from typing import Any

from concertops.model.errors import MapGap
from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "kafka"
LIST_SLICE_S = 0.25


class KafkaSource:
    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self.bootstrap, self.timeout_s = bootstrap, timeout_s
        self._lock = threading.Lock()
        self._admin: Any = None
        self._topics: dict[str, Any] | None = None
        self._failure: Exception | None = None  # a broker that did not answer is asked once per probe
        self._group_ids: set[str] | None = None
        self._errors: list[Any] = []  # the client's own error events (error_cb)

    def observe(self, signal: Signal) -> Observation:
        query = signal.describe_query()
        try:
            value = self._lag(signal) if signal.kind == "kafka_lag" else self._depth(signal.topic)
        except Exception as exc:  # KafkaException, LookupError
            gap = isinstance(exc, MapGap)
            return Observation(signal.name, SOURCE, query, error=error_line(exc), map_gap=gap)
        return Observation(signal.name, SOURCE, query, value=float(value))

    def _client(self) -> Any:
        """The admin client and the cluster's topics, fetched once for all signals of the probe."""
        with self._lock:
            return self._client_unlocked()

    def _client_unlocked(self) -> Any:
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            config: dict[str, Any] = {
                "bootstrap.servers": self.bootstrap,
                "socket.timeout.ms": int(self.timeout_s * 1000),
                "log_level": 0,  # a down broker is reported once, as each signal's error
                "error_cb": self._errors.append,
            }
            self._admin = AdminClient(config)
        if self._failure is not None:
            raise self._failure
        if self._topics is None:
            try:
                self._topics = self._list_topics()
            except Exception as exc:
                self._failure = exc
                raise
        return self._admin

    def _list_topics(self) -> dict[str, Any]:
        """The cluster's topics, asked in short slices: every broker refusing the connection is known after
        the first slice, and is not waited on until the deadline."""
        from confluent_kafka import KafkaError, KafkaException

        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                return dict(self._admin.list_topics(timeout=max(0.01, min(LIST_SLICE_S, left))).topics)
            except KafkaException:
                if left <= LIST_SLICE_S:
                    raise
            self._admin.poll(0)  # serves error_cb
            if any(e.code() == KafkaError._ALL_BROKERS_DOWN for e in self._errors):
                refused = next((e.str() for e in self._errors if e.code() == KafkaError._TRANSPORT), "")
                raise ConnectionError(f"every broker of {self.bootstrap} is down ({refused or 'refused'})")

    def _partitions(self, topic: str) -> list[Any]:
        from confluent_kafka import TopicPartition

        self._client()
        found = (self._topics or {}).get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise MapGap(f"topic {topic} not found on {self.bootstrap}")
        return [TopicPartition(topic, p) for p in sorted(found.partitions)]

    def _groups(self) -> set[str]:
        """The groups the cluster knows (listed once per probe)."""
        with self._lock:
            if self._group_ids is None:
                listed = self._client_unlocked().list_consumer_groups(request_timeout=self.timeout_s).result()
                self._group_ids = {g.group_id for g in listed.valid}
            return self._group_ids

    def _offsets(self, partitions: list[Any], spec: str) -> dict[int, int]:
        from confluent_kafka.admin import OffsetSpec

        which = OffsetSpec.earliest() if spec == "earliest" else OffsetSpec.latest()
        futures = self._client().list_offsets(
            {tp: which for tp in partitions}, request_timeout=self.timeout_s
        )
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    def _lag(self, signal: Signal) -> int:
        from confluent_kafka import ConsumerGroupTopicPartitions

        partitions = self._partitions(signal.topic)
        request = [ConsumerGroupTopicPartitions(signal.group, partitions)]
        futures = self._client().list_consumer_group_offsets(request, request_timeout=self.timeout_s)
        committed = {tp.partition: tp.offset for tp in next(iter(futures.values())).result().topic_partitions}
        nothing_committed = all(offset < 0 for offset in committed.values())
        # No offset at all: a group that is not there is a finding, never a lag of 0 (or of everything).
        if nothing_committed and not signal.group_is_ours and signal.group not in self._groups():
            # Not a map gap: a group that never committed (an idle consumer) is not listed by every broker.
            raise LookupError(f"consumer group {signal.group} not found on {self.bootstrap}")
        high = self._offsets(partitions, "latest")
        low = self._offsets(partitions, "earliest") if any(o < 0 for o in committed.values()) else {}
        lag = 0
        for tp in partitions:
            # Nothing committed yet: everything still in the log is behind.
            position = committed.get(tp.partition, -1)
            position = position if position >= 0 else low.get(tp.partition, 0)
            lag += max(high[tp.partition] - position, 0)
        return lag

    def _depth(self, topic: str) -> int:
        partitions = self._partitions(topic)
        low, high = self._offsets(partitions, "earliest"), self._offsets(partitions, "latest")
        return sum(max(high[p] - low[p], 0) for p in high)
