"""B-1 / B-4 on a service without an outbox (the service map's ``acts.outbox: false``): publish the
``payment.completed`` events its producer lost, in its own envelope, each exactly once.

The topic is the only record of what was published, so it is read before anything is sent and again
after (``concertops.sources.reconcile``: the window's SUCCESS payments whose key no message on the topic
names). Only the payments missing from the topic are published, oldest payment first, keyed by userId as
the service keys them (one partition, so one order, per user), in rate-limited batches; each batch must be
acknowledged by the broker before the next. A run stopped at any point leaves the rest missing, and a
rerun reads the topic again first: what was sent is found there and never sent twice. A topic that cannot
be read to its end decides nothing: the step fails before it sends. After the run every payment sent must
be on the topic exactly once (read back), or the step fails.

The window: ``--since``/``--until`` (UTC), else the last hour up to a minute ago (the service's own publish
retries take ~25 s), on the database's clock. A service without metrics cannot say when events were dropped
(B-4's ``dropped``): it gets the last hour too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from concertops.contract.envelope import step10_payment_completed
from concertops.engine.action_api import Context, Outcome, Progress
from concertops.model.errors import SourceUnreachable, UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.producer import Outgoing, Producer
from concertops.sources.reconcile import Reconciliation, database_utc_now, reconcile, topic_of

DEFAULT_WINDOW = timedelta(hours=1)
SETTLE = timedelta(minutes=1)
READ_MAX_SECONDS = 60.0


@dataclass
class EnvelopeRepublish:
    step: Step
    start: datetime | None = None
    end: datetime | None = None
    missing: int = 0
    progress: Progress = field(default_factory=lambda: Progress("events published"))

    def _window(self, conn: Any) -> tuple[datetime, datetime]:
        config: catalogue.RepublishPaymentsParams = self.step.config
        now = database_utc_now(conn)
        end = config.until if isinstance(config.until, datetime) else now - SETTLE
        start = config.since if isinstance(config.since, datetime) else end - DEFAULT_WINDOW
        if start >= now:
            raise UsageError(f"{self.step.id}: --since {start:%Y-%m-%d %H:%M:%S} is not in the past", "")
        return start, min(end, now)

    def _reconcile(self, ctx: Context) -> Reconciliation:
        bootstrap = ctx.profile.kafka_bootstrap_servers
        if not bootstrap:
            raise SourceUnreachable("re-publishing needs the broker", "set kafka_bootstrap_servers")
        with ctx.engine.connect() as conn:
            if self.start is None or self.end is None:
                self.start, self.end = self._window(conn)
            found = reconcile(conn, ctx.shape, bootstrap, self.start, self.end, READ_MAX_SECONDS)
        assert found.read is not None
        if not found.complete:
            raise SourceUnreachable(
                f"the read of {found.read.topic} stopped at {found.read.bound}: nothing is decided",
                "narrow the window with --since/--until",
            )
        return found

    def _create_command(self, ctx: Context) -> str:
        topic, partitions = topic_of(ctx.shape), ctx.shape.kafka.partitions_of("payment_completed")
        return (
            f"kafka-topics.sh --bootstrap-server {ctx.profile.kafka_bootstrap_servers} --create "
            f"--topic {topic} --partitions {partitions} --replication-factor 1"
        )

    def prepare(self, ctx: Context) -> str:
        found = self._reconcile(ctx)
        self.missing = len(found.missing)
        span = f"{self.start:%Y-%m-%d %H:%M:%S} → {self.end:%H:%M:%S} UTC"
        if not self.missing:
            return f"every one of {found.payments} SUCCESS payment(s) of {span} is on the topic"
        contradicted = found.zone is not None and found.zone.contradicted
        zone = f" (their times read at {found.zone.implied})" if found.zone and contradicted else ""
        limit = self.step.config.max_events
        if self.missing > limit:
            raise UsageError(
                f"{self.step.id}: {self.missing} payments of {span} are missing from the topic, more than "
                f"--max-events {limit}",
                "raise --max-events, or narrow --since/--until",
            )
        assert found.read is not None
        if found.read.absent:
            partitions = ctx.shape.kafka.partitions_of("payment_completed")
            first = (
                f"create {found.read.topic} ({partitions} partition(s), the map's kafka.partitions), then"
                if self.step.config.create_topic
                else f"{found.read.topic} does not exist on the broker: rerun with --create-topic, or create "
                f"it yourself ({self._create_command(ctx)}); then"
            )
            return f"{first} publish all {self.missing} SUCCESS payment(s) of {span}{zone}, oldest first"
        return (
            f"publish {self.missing} of {found.payments} payment(s) of {span}{zone} missing from "
            f"{topic_of(ctx.shape)}, in the service's envelope, keyed by userId, oldest first"
        )

    def run(self, ctx: Context) -> Outcome:
        found = self._reconcile(ctx)  # again, now: what a run since prepare() sent is not sent twice
        todo = found.missing[: self.step.config.max_events]
        topic = topic_of(ctx.shape)
        if not todo:
            return Outcome("ok", 0, f"nothing to publish: every payment of the window is on {topic}")
        assert found.read is not None
        absent = found.read.absent
        if absent and not self.step.config.create_topic:
            return Outcome(
                "failed",
                0,
                f"{topic} does not exist on the broker: nothing published; rerun with --create-topic, or "
                f"create it ({self._create_command(ctx)})",
            )
        partitions = ctx.shape.kafka.partitions_of("payment_completed")
        if ctx.dry_run:
            if absent:
                ctx.would(f"create {topic} ({partitions} partition(s))")
            for row in todo[:20]:
                ctx.would(f"publish {topic} key={row['user']} paymentId={row['key']}")
            return Outcome("ok", len(todo), f"would publish {len(todo)} event(s) to {topic}")
        producer = Producer(ctx.profile.kafka_bootstrap_servers)
        if absent:
            producer.create_topic(topic, partitions)
        producer.check((topic,))
        sent = self._publish(ctx, producer, topic, todo)
        after = self._reconcile(ctx)
        assert after.read is not None
        still = {str(r["key"]) for r in after.missing} & sent
        twice = sum(1 for key in sent if after.read.ids.get(key, 0) > 1)
        if still:
            return Outcome(
                "failed", len(sent), f"published {len(sent)}, but {len(still)} are not on {topic} read back"
            )
        if twice:
            return Outcome("failed", len(sent), f"published {len(sent)}; {twice} are on {topic} twice")
        created = f"created {topic}; " if absent else ""
        return Outcome(
            "ok",
            len(sent),
            f"{created}published {len(sent)} event(s) to {topic}; read back: each once, none missing",
            changed=True,
        )

    def _publish(self, ctx: Context, producer: Producer, topic: str, todo: list[dict[str, Any]]) -> set[str]:
        config: catalogue.RepublishPaymentsParams = self.step.config
        bar = ctx.progress("re-publish", len(todo))
        sent: set[str] = set()
        started = time.monotonic()
        try:
            for first in range(0, len(todo), config.batch):
                ctx.ensure_locked()
                rows = todo[first : first + config.batch]
                at = datetime.now().astimezone()
                batch = [
                    Outgoing(topic, str(r["user"]), step10_payment_completed(topic, r, at)) for r in rows
                ]
                self.progress.in_flight = True
                producer.send(batch)
                acked = [r for r, m in zip(rows, batch, strict=True) if m.acked]
                sent.update(str(r["key"]) for r in acked)
                self.progress.in_flight = False
                if acked:
                    self.progress.committed(len(acked))
                    keys = {"first_payment": str(acked[0]["key"]), "last_payment": str(acked[-1]["key"])}
                    ctx.batch_committed(self.step.id, self.progress.batches, len(acked), keys)
                bar.advance(len(acked))
                failed = next((m.error for m in batch if not m.acked), None)
                if failed:
                    raise SourceUnreachable(f"the broker did not acknowledge an event: {failed}")
                ahead = (len(sent) / config.max_rate) - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # the rate limit
        finally:
            bar.close()
        return sent
