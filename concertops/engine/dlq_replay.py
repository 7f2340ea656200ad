"""B-2: replay the dead-lettered expiry messages to ``reservation.expiration``.

Read from where the last replay stopped (offsets of the ``concertops-dlq-replay`` group, committed only after
the broker acknowledged the replayed copies), each message sent back with its key and a ``replay_count``
header one higher. A message already replayed ``max_replays`` times is quarantined — left in the DLQ, listed,
not sent again — so a poison message cannot loop. Rate-limited; ``--max-messages`` bounds one run. The
expiry consumer applies a replayed expiry at most once: a hold no longer HELD is dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from concertops.contract.names import TOPIC_EXPIRATION, TOPIC_EXPIRATION_DLQ
from concertops.engine.actions import Context, Outcome
from concertops.model.errors import ConcertopsError, UsageError
from concertops.model.findings import Step
from concertops.runbooks import actions as catalogue
from concertops.sources.producer import Outgoing, Producer

GROUP = "concertops-dlq-replay"
REPLAY_HEADER = "replay_count"


@dataclass
class ReplayDlq:
    step: Step

    def _limits(self) -> tuple[int, int, float]:
        config: catalogue.ReplayDlq = self.step.config
        return config.max_messages, config.max_replays, float(config.max_rate)

    def _consumer(self, ctx: Context) -> tuple[Any, Any, int, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": ctx.profile.kafka_bootstrap_servers or "",
                "group.id": GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 0,
            }
        )
        tp = TopicPartition(TOPIC_EXPIRATION_DLQ, 0)
        committed = consumer.committed([tp], timeout=5)[0].offset
        low, high = consumer.get_watermark_offsets(tp, timeout=5)
        start = committed if committed >= 0 else low
        return consumer, tp, max(start, low), high

    def prepare(self, ctx: Context) -> str:
        limit, replays, rate = self._limits()
        if limit < 1 or replays < 1 or rate <= 0:
            raise UsageError(f"{self.step.id}: --max-messages, --max-replays and --max-rate must be positive")
        try:
            consumer, _tp, start, high = self._consumer(ctx)
            consumer.close()
        except Exception as exc:  # KafkaException
            return f"Kafka not answering ({exc}): the DLQ cannot be read now"
        waiting = max(high - start, 0)
        return (
            f"replay {min(waiting, limit)} of {waiting} DLQ message(s) (quarantine after {replays} replays)"
        )

    def run(self, ctx: Context) -> Outcome:
        from confluent_kafka import TopicPartition

        limit, max_replays, rate = self._limits()
        try:
            producer = Producer(ctx.profile.kafka_bootstrap_servers)
            producer.check((TOPIC_EXPIRATION, TOPIC_EXPIRATION_DLQ))
            consumer, tp, start, high = self._consumer(ctx)
        except ConcertopsError as exc:
            return Outcome("failed", 0, str(exc))
        todo = min(max(high - start, 0), limit)
        if not todo:
            consumer.close()
            return Outcome("ok", 0, "nothing to replay: the DLQ holds no message past the last replay")
        consumer.assign([TopicPartition(TOPIC_EXPIRATION_DLQ, 0, start)])
        bar = ctx.progress("DLQ replay", todo)
        replayed, quarantined, read, started = 0, [], 0, time.monotonic()
        try:
            while read < todo:
                msg = consumer.poll(2.0)
                if msg is None:
                    break  # nothing more within 2 s: the DLQ is drained as far as the broker shows
                if msg.error():
                    continue
                read += 1
                headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
                count = int(headers.get(REPLAY_HEADER, "0") or 0)
                if count >= max_replays:
                    quarantined.append(f"offset {msg.offset()} key {(msg.key() or b'').decode()}")
                elif not ctx.dry_run:
                    out = Outgoing(
                        TOPIC_EXPIRATION,
                        (msg.key() or b"").decode(),
                        msg.value() or b"",
                        {**headers, REPLAY_HEADER: str(count + 1)},
                    )
                    producer.send([out])
                    if not out.acked:
                        return Outcome(
                            "failed", replayed, f"replay stopped at DLQ offset {msg.offset()}: {out.error}"
                        )
                    replayed += 1
                else:
                    key = (msg.key() or b"").decode()
                    ctx.would(f"publish {TOPIC_EXPIRATION} key={key} {REPLAY_HEADER}={count + 1}")
                    replayed += 1
                if not ctx.dry_run:
                    # Past this message for good: acknowledged (or quarantined) before the offset moves.
                    consumer.commit(
                        offsets=[TopicPartition(tp.topic, 0, msg.offset() + 1)], asynchronous=False
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
