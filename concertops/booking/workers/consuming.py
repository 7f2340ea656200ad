"""What the two consumers share: reading a topic under a Redis lease, storing offsets, reporting lag.

Partitions are owned through a lease in Redis instead of the broker's group coordinator: the Tansu broker's
coordinator can leave a group without any assignment for minutes after members restart, while a lease
moves to another instance within ``LEASE_S``.

Offsets are stored in Redis under the topic's id (the storing pattern Kafka documents for ``assign()``
consumers). The memory-only broker loses its log on restart and re-creates each topic with a new id, while
a commit in flight across the restart can land in the new broker with an offset from the old log; keyed by
topic id, an offset can only ever be read back against the log it was counted in. Each commit is also sent
to the broker, for lag tools.

Lag is the fetch-response high watermark minus the consumer's position: the Tansu broker's list_offsets
can be short when batches hold several messages, while the watermark carried in fetches is right.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import redis

from concertops.booking.metrics import Metrics
from concertops.booking.publisher import Publisher, consumer_config

log = logging.getLogger(__name__)

# A lease not renewed for this long passes to another instance (as a session timeout would).
LEASE_S = 6.0
RENEW_EVERY_S = 1.0
# Partitions are looked up again this often, so a topic re-created with more of them is read whole.
METADATA_EVERY_S = 10.0
OFFSETS_TTL_S = 7 * 24 * 3600


class LeasedConsumer:
    """Reads every partition of ``topic`` for ``group`` while this instance holds the group's lease."""

    def __init__(
        self, cache: redis.Redis, publisher: Publisher, metrics: Metrics, group: str, topic: str
    ) -> None:
        from confluent_kafka import Consumer

        self.group, self.topic, self.publisher = group, topic, publisher
        self.consumer = Consumer({**consumer_config(publisher.bootstrap, group), "error_cb": self._on_error})
        self.cache = cache
        self.lease = cache.lock(f"consumer-lease:{group}:{topic}", timeout=LEASE_S, thread_local=False)
        self.assigned = metrics.consumer_assigned.labels(group, topic)
        self.assigned.set(0)
        self.lag = LagReporter(metrics, group, topic)
        self.lag.gauge.set(0)
        self.owned: list[int] = []
        self._topic_id, self._offsets_key = "", ""
        self._renewed = self._looked_up = 0.0
        self._epoch = publisher.epoch  # the broker's incarnation our assignment was made in
        self._disconnected = False  # this client lost the broker since its last take

    # -- the loop's calls --------------------------------------------------------------------------
    def poll(self, timeout: float) -> Any | None:
        """The next message of an owned partition, or None (nothing owned, nothing new, or an error)."""
        if self.owned and self._restarted():
            self._renewed = 0.0  # the broker came back: take again at once
        self._keep_lease()
        if not self.owned:
            time.sleep(timeout)
            return None
        self.lag.report(self.consumer)
        msg = self.consumer.poll(timeout)
        if msg is None:
            return None
        if msg.error():
            log.debug("%s: consumer error: %s", self.group, msg.error())
            return None
        return msg

    def commit(self, msg: Any) -> bool:
        """Record that ``msg`` is handled. A failure is logged, not raised: the message comes again, and
        every handler here is idempotent."""
        if self._restarted():
            # Fetched before the broker went away: its offset may mean nothing in the broker's new log.
            log.info("%s: not committing offset %d fetched before a broker restart", self.group, msg.offset())
            return False
        try:
            self.cache.hset(self._offsets_key, str(msg.partition()), str(msg.offset() + 1))
            self.cache.expire(self._offsets_key, OFFSETS_TTL_S)
        except redis.RedisError as exc:
            log.warning("%s: offset not stored, the message will be seen again: %s", self.group, exc)
            return False
        # Also to the broker, for lag tools; the copy in Redis is the one this consumer resumes from.
        with contextlib.suppress(Exception):
            self.consumer.commit(message=msg, asynchronous=True)
        return True

    def seek_back(self, msg: Any) -> None:
        """Read ``msg`` again on the next poll."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
        except (
            KafkaException
        ) as exc:  # no longer assigned (lease lost, broker back): the next take rereads it
            log.debug("%s: seek back skipped: %s", self.group, exc)

    def close(self) -> None:
        if self.owned:
            self._give_up()
        self.consumer.close()

    # -- ownership -----------------------------------------------------------------------------------
    def _keep_lease(self) -> None:
        now = time.monotonic()
        if now - self._renewed < RENEW_EVERY_S:
            return
        self._renewed = now
        try:
            if self.owned:
                self.lease.reacquire()
            elif not self.lease.acquire(blocking=False):
                return
        except redis.exceptions.LockError:
            log.warning("%s: lease on %s lost; another instance reads it now", self.group, self.topic)
            self._unassign()
            return
        except redis.RedisError as exc:
            # Without Redis nobody can tell who owns the topic: stop reading rather than read twice.
            log.warning(
                "%s: Redis unreachable (%s); not reading %s", self.group, type(exc).__name__, self.topic
            )
            self._unassign()
            return
        if not self.owned or self._restarted() or now - self._looked_up > METADATA_EVERY_S:
            self._take()

    def _take(self) -> None:
        """Assign every partition of the topic's current incarnation from the offsets stored for it."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

        self._looked_up = time.monotonic()
        epoch = self.publisher.epoch
        try:
            topic = self.consumer.list_topics(self.topic, timeout=2).topics.get(self.topic)
            partitions = sorted(topic.partitions) if topic is not None and not topic.error else []
            topic_id = self.publisher.topic_id(self.topic)
        except KafkaException as exc:  # broker away: keep what we have and try again
            log.debug("%s: partition lookup failed: %s", self.group, exc)
            return
        if not partitions or not topic_id:
            return
        if partitions == self.owned and topic_id == self._topic_id and not self._restarted():
            return
        offsets_key = f"consumer-offsets:{self.group}:{self.topic}:{topic_id}"
        try:
            stored = {int(p): int(o) for p, o in self.cache.hgetall(offsets_key).items()}
        except redis.RedisError as exc:
            log.warning(
                "%s: offsets unreadable (%s); not reading %s", self.group, type(exc).__name__, self.topic
            )
            return
        starts = [TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        self.consumer.assign(starts)
        log.info(
            "%s: reading %s (id %s) partitions %s from offsets %s",
            self.group,
            self.topic,
            topic_id,
            partitions,
            [tp.offset for tp in starts],
        )
        self.owned, self._topic_id, self._offsets_key = partitions, topic_id, offsets_key
        self._epoch, self._disconnected = epoch, False
        self.assigned.set(len(partitions))

    def _restarted(self) -> bool:
        """The broker may have restarted since the partitions were taken: messages fetched before belong to
        a log it may have lost, so their offsets are not committed, and the partitions are taken again."""
        return self._disconnected or self.publisher.epoch != self._epoch

    def _on_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self._disconnected = True

    def _unassign(self) -> None:
        if self.owned:
            self.consumer.unassign()
        self.owned = []
        # Lag is the owner's to report: an instance that reads nothing is behind by nothing.
        self.assigned.set(0)
        self.lag.gauge.set(0)

    def _give_up(self) -> None:
        self._unassign()
        with contextlib.suppress(redis.RedisError):  # expired or Redis away: it times out by itself
            self.lease.release()


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
        except Exception:  # KafkaException while the broker is away: try again next time
            return
        lag = 0
        for tp in positions:
            position = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0:
                continue
            lag += max(high - position, 0) if position >= 0 else high
        self.gauge.set(lag)
