"""B-2: replay the dead-lettered expiry messages to ``reservation.expiration``.

Read every partition from where the last replay stopped to the end its fetches report (offsets of the
``concertops-dlq-replay`` group, committed per partition only after the broker acknowledged the replayed
copies), each message sent back with its key and a ``replay_count`` header one higher. A message already
replayed ``max_replays`` times is quarantined (left in the DLQ, listed, not sent again), so a poison
message cannot loop. Rate-limited; ``--max-messages`` bounds one run. The expiry consumer applies a
replayed expiry at most once: a hold no longer HELD is dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import ConcertopsError, SourceUnreachable, UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.producer import Outgoing, Producer

GROUP = "concertops-dlq-replay"
REPLAY_HEADER = "replay_count"


@dataclass
class ReplayDlq:
    step: Step

    def _limits(self) -> tuple[int, int, float]:
        config: catalogue.ReplayDlqParams = self.step.config
        return config.max_messages, config.max_replays, float(config.max_rate)

    def _consumer(self, ctx: Context) -> tuple[Any, list[Any], int]:
        """The replay group's consumer, where it stands on every DLQ partition, and how many wait there."""
        from confluent_kafka import Consumer, TopicPartition

        dlq = _topics(ctx)[1]

        consumer = Consumer(
            {
                "bootstrap.servers": ctx.profile.kafka_bootstrap_servers or "",
                "group.id": GROUP,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "log_level": 0,
            }
        )
        topic = consumer.list_topics(dlq, timeout=5).topics.get(dlq)
        if topic is None or topic.error is not None or not topic.partitions:
            consumer.close()
            raise SourceUnreachable(f"topic {dlq} missing", "the service creates it on start")
        partitions = [TopicPartition(dlq, p) for p in sorted(topic.partitions)]
        starts, waiting = [], 0
        for tp, committed in zip(partitions, consumer.committed(partitions, timeout=5), strict=True):
            low, high = consumer.get_watermark_offsets(tp, timeout=5)
            start = max(committed.offset if committed.offset >= 0 else low, low)
            starts.append(TopicPartition(dlq, tp.partition, start))
            waiting += max(high - start, 0)
        return consumer, starts, waiting

    def prepare(self, ctx: Context) -> str:
        limit, replays, rate = self._limits()
        if limit < 1 or replays < 1 or rate <= 0:
            raise UsageError(f"{self.step.id}: --max-messages, --max-replays and --max-rate must be positive")
        try:
            consumer, starts, waiting = self._consumer(ctx)
            consumer.close()
        except Exception as exc:  # KafkaException
            return f"Kafka not answering ({exc}): the DLQ cannot be read now"
        return decide(waiting, len(starts), limit, replays)

    def run(self, ctx: Context) -> Outcome:
        from confluent_kafka import KafkaError, TopicPartition

        target, dlq = _topics(ctx)
        limit, max_replays, rate = self._limits()
        try:
            producer = Producer(ctx.profile.kafka_bootstrap_servers)
            producer.check((target, dlq))
            consumer, starts, waiting = self._consumer(ctx)
        except ConcertopsError as exc:
            return Outcome("failed", 0, str(exc))
        todo = min(waiting, limit)
        if not todo:
            consumer.close()
            return Outcome("ok", 0, "nothing to replay: the DLQ holds no message past the last replay")
        consumer.assign(starts)
        pending = {tp.partition for tp in starts}  # partitions not read to their end yet
        bar = ctx.progress("DLQ replay", todo)
        replayed, quarantined, read, started = 0, [], 0, time.monotonic()
        try:
            # To each partition's end as its fetches report it, not as ListOffsets counted it (Tansu counts
            # a batch of several records as one): ``todo`` sizes the progress bar, ``limit`` bounds the run.
            while read < limit and pending:
                msg = consumer.poll(2.0)
                if msg is None:
                    break  # nothing more within 2 s: the DLQ is drained as far as the broker shows
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                ctx.ensure_locked()
                read += 1
                headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
                count = int(headers.get(REPLAY_HEADER, "0") or 0)
                if set_aside(count, max_replays):
                    where = f"partition {msg.partition()} offset {msg.offset()}"
                    quarantined.append(f"{where} key {(msg.key() or b'').decode()}")
                elif not ctx.dry_run:
                    out = Outgoing(
                        target,
                        (msg.key() or b"").decode(),
                        msg.value() or b"",
                        {**headers, REPLAY_HEADER: str(count + 1)},
                    )
                    producer.send([out])
                    if not out.acked:
                        return Outcome(
                            "failed",
                            replayed,
                            f"replay stopped at DLQ partition {msg.partition()} offset {msg.offset()}: "
                            f"{out.error}",
                        )
                    replayed += 1
                else:
                    key = (msg.key() or b"").decode()
                    ctx.would(f"publish {target} key={key} {REPLAY_HEADER}={count + 1}")
                    replayed += 1
                if not ctx.dry_run:
                    # Past this message for good: acknowledged (or quarantined) before the offset moves.
                    consumer.commit(
                        offsets=[TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)],
                        asynchronous=False,
                    )
                bar.advance(1)
                ahead = read / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        finally:
            bar.close()
            consumer.close()
        verb = "would replay" if ctx.dry_run else "replayed"
        detail = f"{verb} {replayed} expiry message(s)"
        if quarantined:
            detail += f"; quarantined {len(quarantined)} replayed {max_replays} times already: " + ", ".join(
                quarantined[:10]
            )
        return Outcome("ok", replayed, detail, changed=replayed > 0 and not ctx.dry_run)


def decide(waiting: int, partitions: int, limit: int, replays: int) -> str:
    """The plan's line: how many of the waiting messages one run replays (pure)."""
    return (
        f"replay {min(waiting, limit)} of {waiting} DLQ message(s) on {partitions} partition(s) "
        f"(quarantine after {replays} replays)"
    )


def set_aside(count: int, max_replays: int) -> bool:
    """A message replayed ``max_replays`` times already is set aside, never replayed again (pure)."""
    return count >= max_replays


def _topics(ctx: Context) -> tuple[str, str]:
    """The expiry topic and its dead-letter topic, as the service map names them."""
    target, dlq = ctx.shape.topic("expiration"), ctx.shape.topic("expiration_dlq")
    if not target or not dlq:
        raise UsageError(
            f"replay-dlq: the service map {ctx.shape.name} names no kafka.topics.expiration and "
            "expiration_dlq",
            "add them to the map",
        )
    return target, dlq
