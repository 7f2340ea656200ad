"""B-1 / B-4: every payment of the window gets its ``payment.completed`` event on the topic, exactly once.

One action for every service. "Missing" means missing from the topic, read to its end on every partition:
a topic that cannot be read to its end decides nothing (the step fails before it sends). The map's
capabilities say only how the missing events are sent:

- through the outbox, where the service has one (``concertops.engine.outbox_relay``): the window's
  payments nobody was notified of are reconciled with the topic by event id, under the rows' locks, and the
  missing events are queued there and published as the relay would;
- else in the service's own envelope (``kafka.envelope``), straight to the topic: the window's SUCCESS
  payments are reconciled with the topic by payment key (``concertops.sources.reconcile``), and a topic
  the broker lost is created again with ``--create-topic``.

gather reads the payments and the topic; decide is pure (which events to send, which rows to mark, the
limit); act sends exactly those, oldest payment first, in acknowledged, rate-limited batches, then reads the
topic back: every event sent must be there, and duplicates are counted.

The window: ``--since``/``--until`` (UTC); else for B-4 from the first event Prometheus saw dropped; else
the last hour; all on the database's clock. Without an outbox the newest minute is left out (the service's
own publish retries take ~25 s).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from concertops.contract import capabilities
from concertops.contract.envelope import step10_payment_completed
from concertops.engine.action_api import Context, Outcome, Progress
from concertops.engine.outbox_relay import UNSENT, Outbox
from concertops.model.errors import ConcertopsError, SourceUnreachable, UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import database_now
from concertops.sources.producer import Outgoing, Producer
from concertops.sources.reconcile import Reconciliation, reconcile, topic_of

DEFAULT_WINDOW = timedelta(hours=1)
SETTLE = timedelta(minutes=1)  # without an outbox: the service's own publish retries take ~25 s
# A message's time is its producer's clock at send, the payment's is the database's at commit: the topic is
# read from a margin before the window so that neither skew nor a slow send hides an event that is there.
READ_MARGIN = timedelta(minutes=10)
READ_MAX_MESSAGES = 2_000_000
READ_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    origin: str

    def text(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M:%S} → {self.until:%H:%M:%S} UTC"


def window(ctx: Context, step: Step, settle: timedelta) -> Window:
    """The payments to look at, on the database's clock (an operator's host that is off shifts nothing)."""
    # --since before --until is the model's own check (RepublishPaymentsParams.__post_init__).
    config: catalogue.RepublishPaymentsParams = step.config
    with ctx.engine.connect() as conn:
        db_now = database_now(conn)
    since, until = config.since, config.until
    end = min(until, db_now) if isinstance(until, datetime) else db_now - settle
    if isinstance(since, datetime):
        if since >= end:
            raise UsageError(f"--since {since:%Y-%m-%d %H:%M:%S} is not before now ({end:%H:%M:%S} UTC)")
        return Window(since, end, "--since/--until")
    if config.window == "dropped":
        # From the first dropped event until now: a payment after the last drop may lack its event too.
        found = _dropped_window(ctx, db_now)
        if found is not None:
            return Window(found.since, end, found.origin)
    return Window(end - DEFAULT_WINDOW, end, "the last hour")


def _dropped_window(ctx: Context, db_now: datetime) -> Window | None:
    """When Prometheus saw events dropped in the last hour: that span, a minute wider on each side.

    Prometheus's times are its host's clock: they are taken as ages (Prometheus's now minus each time) and
    laid onto the database's clock, so neither host's offset moves the window."""
    if not ctx.profile.prometheus_url:
        return None
    from concertops.sources.prometheus import prometheus

    query = "sum(increase(kafka_events_skipped_total[1m])) > 0"
    try:
        client = prometheus(ctx.profile.prometheus_url, 5.0)
        prom_now = float(client.query("vector(time())")[0]["value"][1])
        end = datetime.fromtimestamp(prom_now, UTC)
        result = client.query_range(query, end - DEFAULT_WINDOW, end, "15")
        values = [float(ts) for series in result for ts, _v in series["values"]]
    except Exception:  # Prometheus down or odd: fall back to the default window
        return None
    if not values:
        return None
    first, last = (db_now - timedelta(seconds=prom_now - v) for v in (min(values), max(values)))
    return Window(
        first - timedelta(minutes=2), min(db_now, last + timedelta(minutes=1)), "Prometheus: events dropped"
    )


@dataclass
class Decision:
    """Which of the window's candidates to send, and (with an outbox) which rows to mark or queue."""

    candidates: int = 0  # payments of the window that may lack their event
    on_topic: int = 0  # of those, events the topic already holds
    send: list[str] = field(default_factory=list)  # ids to publish, in payment order
    delivered: list[str] = field(default_factory=list)  # unsent outbox rows whose event is on the topic
    new: list[str] = field(default_factory=list)  # events with no outbox row yet
    lost: list[str] = field(default_factory=list)  # rows marked sent whose event is not on the topic


def decide(
    candidates: list[str],
    on_topic: Mapping[str, int],
    limit: int,
    outbox: Mapping[str, str] | None = None,
) -> Decision:
    """Pure: the candidates' ids (in payment order), the ids the topic holds, the step's ``--max-events``
    and, on a service with an outbox, each row's status; what to send and what to mark."""
    decision = Decision(candidates=len(candidates))
    decision.send = [c for c in candidates if c not in on_topic]
    decision.on_topic = len(candidates) - len(decision.send)
    if len(decision.send) > limit:
        raise UsageError(
            f"{len(decision.send)} payment events are missing from the topic, more than --max-events {limit}",
            "raise --max-events, or narrow --since/--until",
        )
    if outbox is not None:
        decision.delivered = [e for e, s in outbox.items() if s in UNSENT and e in on_topic]
        decision.new = [e for e in decision.send if e not in outbox]
        decision.lost = [e for e in decision.send if outbox.get(e) == "PUBLISHED"]
    return decision


@dataclass
class RepublishPayments:
    step: Step
    span: Window | None = None
    decision: Decision | None = None
    # Batches straight to the topic, as the audit and an interrupt report them (through an outbox, the
    # outbox rows say what was sent).
    progress: Progress | None = None

    @property
    def limits(self) -> catalogue.RepublishPaymentsParams:
        return self.step.config

    def prepare(self, ctx: Context) -> str:
        outbox = capabilities.of(ctx.shape).outbox
        self.progress = None if outbox else Progress("events published")
        self.span = window(ctx, self.step, timedelta(0) if outbox else SETTLE)
        if outbox:
            return self._prepare_outbox(ctx)
        return self._prepare_direct(ctx)

    def run(self, ctx: Context) -> Outcome:
        assert self.span is not None
        if capabilities.of(ctx.shape).outbox:
            return self._run_outbox(ctx)
        return self._run_direct(ctx)

    # -- through the outbox ------------------------------------------------------------------------------
    def _relay(self, ctx: Context) -> Outbox:
        topic = topic_of(ctx.shape)
        return Outbox(ctx.shape, topic)

    def _decide_outbox(self, ctx: Context, keep: bool) -> tuple[Decision, Any]:
        """Gather, decide and apply in one transaction (rolled back unless ``keep``); the topic's read."""
        assert self.span is not None
        relay = self._relay(ctx)
        with ctx.engine.connect() as conn:
            tx = conn.begin()
            try:
                # The payments' times are the service's, in its zone as their rows show it (as re-publishing
                # straight to the topic reads them, through the reconciliation).
                offset = _payment_zone(conn, ctx, self.span.until)
                found = relay.candidates(conn, self.span.since + offset, self.span.until + offset)
                if len(found) > self.limits.max_events:
                    raise UsageError(
                        f"{len(found)} payment events to re-publish, over --max-events "
                        f"{self.limits.max_events}",
                        "raise --max-events, or narrow --since/--until",
                    )
                status = relay.lock_rows(conn, [event for event, _key, _payload in found])
                read = self._read(ctx, relay.topic)  # read with the rows locked: no sender is mid-way now
                decision = decide([e for e, _k, _p in found], read.ids, self.limits.max_events, status)
                new = set(decision.new)
                relay.apply(conn, decision.delivered, [f for f in found if f[0] in new], decision.lost)
            except BaseException:
                tx.rollback()
                raise
            if keep:
                tx.commit()
            else:
                tx.rollback()
        return decision, read

    def _read(self, ctx: Context, topic: str) -> Any:
        from concertops.sources.topic_read import read_topic

        assert self.span is not None
        if not ctx.profile.kafka_bootstrap_servers:
            raise SourceUnreachable("no Kafka configured", "set kafka_bootstrap_servers in the profile")
        found = read_topic(
            ctx.profile.kafka_bootstrap_servers,
            topic,
            self.span.since - READ_MARGIN,
            max_messages=READ_MAX_MESSAGES,
            max_seconds=READ_MAX_SECONDS,
        )
        if not found.complete:
            raise SourceUnreachable(
                f"{topic} could not be read to its end within {found.bound} ({found.messages} messages read)",
                "narrow --since/--until",
            )
        return found

    def _prepare_outbox(self, ctx: Context) -> str:
        assert self.span is not None
        span = f"{self.span.since:%H:%M:%S} to {self.span.until:%H:%M:%S} UTC ({self.span.origin})"
        try:
            found, read = self._decide_outbox(ctx, keep=False)  # decided for real, then rolled back
        except SourceUnreachable as exc:
            return f"payments {span}: cannot tell which events are missing: {exc}"
        self.decision = found
        return (
            f"payments {span}: {found.candidates} without a notification, {found.on_topic} of them "
            f"already on {read.topic} ({read.messages} message(s) of {read.partitions} "
            f"partition(s) read); publish the {len(found.send)} missing at most {self.limits.max_rate:g}/s"
        )

    def _run_outbox(self, ctx: Context) -> Outcome:
        batch, rate = self.limits.batch, float(self.limits.max_rate)
        try:
            found, _read = self._decide_outbox(ctx, keep=not ctx.dry_run)
        except SourceUnreachable as exc:
            return Outcome("failed", 0, f"nothing published: cannot tell which events are missing ({exc})")
        relay = self._relay(ctx)
        summary = (
            f"{found.candidates} payment(s) without a notification; {found.on_topic} already on the topic"
            + (f" ({len(found.delivered)} unsent row(s) found delivered, marked)" if found.delivered else "")
        )
        if ctx.dry_run:
            ctx.would(
                f"publish {len(found.send)} {relay.topic} event(s), oldest payment first, "
                f"keyed by payment, in batches of {batch}, at most {rate:g}/s"
            )
            return Outcome("ok", len(found.send), f"{summary}; would publish {len(found.send)} (rolled back)")
        if not found.send:
            return Outcome("ok", 0, f"{summary}; nothing to publish", changed=bool(found.delivered))
        try:
            producer = Producer(ctx.profile.kafka_bootstrap_servers)
            producer.check((relay.topic,))
        except ConcertopsError as exc:
            # Queued rows wait in the outbox: the service's relay sends them when the broker is back.
            return Outcome(
                "failed", 0, f"{summary}; {len(found.send)} queued, not published: {exc}", changed=True
            )
        bar = ctx.progress("re-publish", len(found.send))
        try:
            sent, failed, last = relay.publish(ctx, producer, found.send, batch, rate, bar.advance)
        finally:
            bar.close()
        detail = f"{summary}; published {sent} of {len(found.send)}"
        if failed:
            return Outcome(
                "failed",
                sent,
                f"{detail}; {failed} not acknowledged, left PENDING after {last or 'the start'}: rerun",
            )
        try:
            on_topic = self._read(ctx, relay.topic).ids
        except SourceUnreachable as exc:
            return Outcome("failed", sent, f"{detail}; not read back: {exc}", changed=True)
        return read_back(found.send, on_topic, sent, detail)

    # -- straight to the topic, in the service's envelope ---------------------------------------------------
    def _reconcile(self, ctx: Context) -> Reconciliation:
        assert self.span is not None
        bootstrap = ctx.profile.kafka_bootstrap_servers
        if not bootstrap:
            raise SourceUnreachable("re-publishing needs the broker", "set kafka_bootstrap_servers")
        with ctx.engine.connect() as conn:
            found = reconcile(conn, ctx.shape, bootstrap, self.span.since, self.span.until, READ_MAX_SECONDS)
        assert found.read is not None
        if not found.complete:
            raise SourceUnreachable(
                f"the read of {found.read.topic} stopped at {found.read.bound}: nothing is decided",
                "narrow the window with --since/--until",
            )
        return found

    def _decide_direct(self, ctx: Context) -> tuple[Decision, Reconciliation, dict[str, dict[str, Any]]]:
        found = self._reconcile(ctx)
        assert found.read is not None
        rows = {str(r["key"]): r for r in found.missing}
        try:
            decision = decide(list(rows), {}, self.limits.max_events)
        except UsageError:
            assert self.span is not None
            raise UsageError(
                f"{self.step.id}: {len(rows)} payments of {self.span.text()} are missing from the topic, "
                f"more than --max-events {self.limits.max_events}",
                "raise --max-events, or narrow --since/--until",
            ) from None
        decision.candidates, decision.on_topic = found.payments, found.payments - len(rows)
        return decision, found, rows

    def _create_command(self, ctx: Context) -> str:
        topic, partitions = topic_of(ctx.shape), ctx.shape.kafka.partitions_of("payment_completed")
        return (
            f"kafka-topics.sh --bootstrap-server {ctx.profile.kafka_bootstrap_servers} --create "
            f"--topic {topic} --partitions {partitions} --replication-factor 1"
        )

    def _prepare_direct(self, ctx: Context) -> str:
        assert self.span is not None
        decision, found, _rows = self._decide_direct(ctx)
        self.decision = decision
        span = self.span.text()
        missing = len(decision.send)
        if not missing:
            return f"every one of {found.payments} SUCCESS payment(s) of {span} is on the topic"
        contradicted = found.zone is not None and found.zone.contradicted
        zone = f" (their times read at {found.zone.implied})" if found.zone and contradicted else ""
        assert found.read is not None
        if found.read.absent:
            partitions = ctx.shape.kafka.partitions_of("payment_completed")
            first = (
                f"create {found.read.topic} ({partitions} partition(s), the map's kafka.partitions), then"
                if self.limits.create_topic
                else f"{found.read.topic} does not exist on the broker: rerun with --create-topic, or create "
                f"it yourself ({self._create_command(ctx)}); then"
            )
            return f"{first} publish all {missing} SUCCESS payment(s) of {span}{zone}, oldest first"
        return (
            f"publish {missing} of {found.payments} payment(s) of {span}{zone} missing from "
            f"{topic_of(ctx.shape)}, in the service's envelope, keyed by userId, oldest first"
        )

    def _run_direct(self, ctx: Context) -> Outcome:
        # Decided again, now: what a run since prepare() sent is not sent twice.
        decision, found, rows = self._decide_direct(ctx)
        todo = [rows[key] for key in decision.send]
        topic = topic_of(ctx.shape)
        if not todo:
            return Outcome("ok", 0, f"nothing to publish: every payment of the window is on {topic}")
        assert found.read is not None
        absent = found.read.absent
        if absent and not self.limits.create_topic:
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
        sent = self._send(ctx, producer, topic, todo)
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

    def _send(self, ctx: Context, producer: Producer, topic: str, todo: list[dict[str, Any]]) -> set[str]:
        """Each payment's event in the service's envelope, keyed by userId as the service keys them (one
        partition, so one order, per user); each batch acknowledged before the next, rate-limited."""
        progress = self.progress or Progress("events published")
        bar = ctx.progress("re-publish", len(todo))
        sent: set[str] = set()
        started = time.monotonic()
        try:
            for first in range(0, len(todo), self.limits.batch):
                ctx.ensure_locked()
                rows = todo[first : first + self.limits.batch]
                at = datetime.now().astimezone()
                batch = [
                    Outgoing(topic, str(r["user"]), step10_payment_completed(topic, r, at)) for r in rows
                ]
                progress.in_flight = True
                producer.send(batch)
                acked = [r for r, m in zip(rows, batch, strict=True) if m.acked]
                sent.update(str(r["key"]) for r in acked)
                progress.in_flight = False
                if acked:
                    progress.committed(len(acked))
                    keys = {"first_payment": str(acked[0]["key"]), "last_payment": str(acked[-1]["key"])}
                    ctx.batch_committed(self.step.id, progress.batches, len(acked), keys)
                bar.advance(len(acked))
                failed = next((m.error for m in batch if not m.acked), None)
                if failed:
                    raise SourceUnreachable(f"the broker did not acknowledge an event: {failed}")
                ahead = (len(sent) / self.limits.max_rate) - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # the rate limit
        finally:
            bar.close()
        return sent


def _payment_zone(conn: Any, ctx: Context, at: datetime) -> timedelta:
    from concertops.sources.clock import ZoneUnreadable, read_zone

    try:
        return read_zone(conn, ctx.shape, "payment", now=at).offset
    except ZoneUnreadable as exc:
        raise SourceUnreachable(
            f"{exc}: nothing is decided", "fix the map's zone or tables.payment.clock"
        ) from None


def read_back(sent_ids: list[str], on_topic: Mapping[str, int], sent: int, detail: str) -> Outcome:
    """The topic holds every event the run was to publish; a copy too many is reported (pure)."""
    absent = [e for e in sent_ids if e not in on_topic]
    doubled = sum(on_topic[e] - 1 for e in sent_ids if on_topic.get(e, 0) > 1)
    present = len(sent_ids) - len(absent)
    checked = f"read back: {present} of {len(sent_ids)} on the topic, {doubled} duplicate(s)"
    if absent:
        return Outcome("failed", sent, f"{detail}; {checked}: rerun", changed=True)
    return Outcome("ok", sent, f"{detail}; {checked}", changed=True)
