"""What is on a topic: the event ids of every partition's messages from a point in time to the end.

Re-publishing asks this before it sends anything ("missing" means missing from the topic, not missing a
side effect downstream). Each partition is read from the first offset at or after ``since`` (ListOffsets by
time) up to the end its fetches report (partition EOF, not ListOffsets' latest: the Tansu broker reports
that wrong for batches of several records). Nothing is committed; no group is joined. Bounded in messages
and seconds: a read that hit a bound says so, and the caller must not take it as the whole topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from concertops.model.errors import SourceUnreachable
from concertops.redact import error_line

if TYPE_CHECKING:
    from confluent_kafka import Message

READER_GROUP = "concertops-topic-reader"  # never committed to: only a client id for the broker's logs


def event_id_of(message: Message) -> str | None:
    """The event id of one message: its ``event_id`` header, else the JSON payload's ``event_id``."""
    raw = message.headers() or []
    for key, value in raw.items() if isinstance(raw, dict) else raw:
        if key == "event_id" and value:
            return value.decode() if isinstance(value, bytes) else str(value)
    try:
        payload = json.loads(message.value() or b"")
    except ValueError:
        return None
    found = payload.get("event_id") if isinstance(payload, dict) else None
    return str(found) if found else None


@dataclass
class TopicRead:
    topic: str
    partitions: int = 0
    messages: int = 0
    ids: dict[str, int] = field(default_factory=dict)  # event id -> how many times it is on the topic
    complete: bool = False
    bound: str = ""  # which bound stopped an incomplete read
    absent: bool = False  # the broker answered, and has no such topic (read with ``absent_ok``)

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.ids.values() if count > 1)


def read_topic(
    bootstrap: str,
    topic: str,
    since: datetime | None,
    *,
    max_messages: int,
    max_seconds: float,
    identify: Callable[[Message], str | None] = event_id_of,
    absent_ok: bool = False,
) -> TopicRead:
    """Every partition of ``topic`` from ``since`` (naive UTC; None: the beginning) to its end. A topic
    the broker does not have is an error, or with ``absent_ok`` a complete read of nothing, ``absent``."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": READER_GROUP,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "socket.timeout.ms": 5_000,
            "log_level": 0,
        }
    )
    result = TopicRead(topic)
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=5.0).topics.get(topic)
        except Exception as exc:  # KafkaException: the broker did not answer
            raise SourceUnreachable(f"Kafka at {bootstrap} did not answer: {error_line(exc)}") from None
        if metadata is None or metadata.error is not None or not metadata.partitions:
            if absent_ok and (metadata is None or metadata.error is None or _unknown(metadata.error)):
                result.absent = result.complete = True
                return result
            raise SourceUnreachable(f"topic {topic} missing on {bootstrap}")
        numbers = sorted(metadata.partitions)
        result.partitions = len(numbers)
        if since is None:
            starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in numbers]
        else:
            at_ms = int(since.replace(tzinfo=UTC).timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, at_ms) for p in numbers], timeout=5.0
            )
            # -1: no message at or after that time on the partition; it is read from its end (nothing).
            starts = [tp for tp in found if tp.offset >= 0]
        pending = {tp.partition for tp in starts}
        if not pending:
            result.complete = True
            return result
        consumer.assign(starts)
        deadline = time.monotonic() + max_seconds
        while pending:
            if result.messages >= max_messages:
                result.bound = f"{max_messages} messages"
                return result
            if time.monotonic() > deadline:
                result.bound = f"{max_seconds:g} s"
                return result
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise SourceUnreachable(f"reading {topic}: {error.str()}")
            result.messages += 1
            event = identify(message)
            if event:
                result.ids[event] = result.ids.get(event, 0) + 1
        result.complete = True
        return result
    finally:
        consumer.close()


def _unknown(error: Any) -> bool:
    """Whether a topic's metadata error says the broker has no such topic (not that it failed)."""
    from confluent_kafka import KafkaError

    return bool(error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART)
