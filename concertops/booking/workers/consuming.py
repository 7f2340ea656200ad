"""What the two consumers share: creating one, and reporting lag from the consumer's own view.

Lag is the fetch-response high watermark minus the consumer's position: the Tansu broker's list_offsets
can be short when batches hold several messages, while the watermark carried in fetches is right.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from concertops.booking.metrics import Metrics
from concertops.booking.publisher import consumer_config

log = logging.getLogger(__name__)


def make_consumer(
    metrics: Metrics, bootstrap: str, group: str, topic: str, auto_commit: bool, max_poll_interval_s: int = 30
) -> Any:
    from confluent_kafka import Consumer

    consumer = Consumer(consumer_config(bootstrap, group, auto_commit, max_poll_interval_s))
    # Partitions this instance reads; zero on every instance means nobody consumes the topic.
    gauge = metrics.consumer_assigned.labels(group, topic)
    gauge.set(0)

    def assigned(_: Any, partitions: list[Any]) -> None:
        gauge.set(len(partitions))
        log.info("%s: assigned %s partitions %s", group, topic, [p.partition for p in partitions])

    def revoked(_: Any, partitions: list[Any]) -> None:
        gauge.set(0)
        log.info("%s: revoked %s partitions %s", group, topic, [p.partition for p in partitions])

    consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked)
    return consumer


class LagReporter:
    def __init__(self, metrics: Metrics, group: str, topic: str) -> None:
        self.gauge = metrics.consumer_lag.labels(group, topic)
        self._last = 0.0

    def report(self, consumer: Any, every_s: float = 1.0) -> None:
        if time.monotonic() - self._last < every_s:
            return
        self._last = time.monotonic()
        try:
            assigned = consumer.assignment()
            positions = consumer.position(assigned) if assigned else []
            # Before the first message of an assignment the client reports no position (-1001); it is
            # fetching from the committed offset then, so that is the position to judge.
            unknown = [tp for tp in positions if tp.offset < 0]
            committed = (
                {(c.topic, c.partition): c.offset for c in consumer.committed(unknown, timeout=2)}
                if unknown
                else {}
            )
        except Exception:  # KafkaException while rebalancing: try again next time
            return
        lag = 0
        for tp in positions:
            position = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0:
                continue
            if position > high:
                tp.offset = position
                rewind(consumer, tp, high)
                continue
            lag += high - position if position >= 0 else high
        self.gauge.set(lag)


def rewind(consumer: Any, tp: Any, high: int) -> None:
    """The position is past the end of the log: the broker lost its log (the memory-only Tansu broker after
    a restart) and answers fetches there with nothing. Start over from the beginning; handlers are
    idempotent, so reading a message twice is safe, while staying put would read nothing ever again."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    log.warning(
        "%s[%d]: position %d is past the log end %d (log truncated); rewinding",
        tp.topic,
        tp.partition,
        tp.offset,
        high,
    )
    try:
        consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
    except Exception as exc:  # not fetching yet: the next report tries again
        log.debug("rewind deferred: %s", exc)


def commit(consumer: Any, msg: Any) -> bool:
    """Commit one message's offset. A failed commit (group lost after a broker restart) is logged, not
    raised: the message comes again, and every handler here is idempotent."""
    try:
        consumer.commit(msg, asynchronous=False)
    except Exception as exc:  # KafkaException: UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, ...
        log.warning("offset commit failed, the message will be seen again: %s", exc)
        return False
    return True
