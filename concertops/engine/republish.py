"""B-1 / B-4: every payment gets its ``payment.completed`` event on the topic, exactly once.

"Missing" means missing from the topic. For the payments of the window (``--since``/``--until``; else for B-4
from the first event Prometheus saw dropped; else the last hour, all on the database's clock) that nobody was
notified of:

1. Decide, in one transaction: lock their outbox rows and the topic's unsent ones (``FOR UPDATE``, which
   waits for a batch the service's relay has in flight), then read the topic from the window's start to its
   end, every partition. An event on the topic is delivered: an unsent row of it is marked PUBLISHED (a
   sender stopped between the broker's acknowledgement and its commit). An event not on the topic is queued:
   written to the outbox if missing, PENDING again if it was marked sent (a memory-only broker loses what it
   held). The event id is deterministic per payment, so it is the same event either way. A topic that cannot
   be read to its end decides nothing: the step fails and changes nothing.
2. Publish exactly the queued events, oldest payment first, keyed by aggregate (one partition order per
   payment), in batches whose rows stay locked (``FOR UPDATE SKIP LOCKED``, as the relay does, so the two
   never send the same row); a row is marked PUBLISHED only after the broker acknowledged it. Rate-limited.
   Stopped or failed, what was not acknowledged stays PENDING, and a rerun decides again from the topic.
3. Read the topic back: every queued event must be there; duplicates of the window's events are counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from concertops.contract import events
from concertops.contract.names import TOPIC_PAYMENT_COMPLETED
from concertops.contract.schema import notification, outbox_event, payment
from concertops.engine.action_api import Context, Outcome
from concertops.engine.locking import LockLost
from concertops.model.errors import ConcertopsError, SourceUnreachable, UsageError
from concertops.model.findings import Step
from concertops.redact import error_line
from concertops.runbooks import catalogue
from concertops.sources.database import database_now
from concertops.sources.producer import Outgoing, Producer

if TYPE_CHECKING:
    from concertops.sources.topic_read import TopicRead

DEFAULT_WINDOW = timedelta(hours=1)
IDLE_WAIT_S = 10.0
# A message's time is its producer's clock at send, the payment's is the database's at commit: the topic is
# read from a margin before the window so that neither skew nor a slow send hides an event that is there.
READ_MARGIN = timedelta(minutes=10)
READ_MAX_MESSAGES = 2_000_000
READ_MAX_SECONDS = 60.0
# SENDING: claimed by a sender that had not recorded the broker's answer (it may have died mid-batch).
_UNSENT = ("PENDING", "FAILED", "SENDING")


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    origin: str


def window(ctx: Context, step: Step) -> Window:
    """The payments to look at, on the database's clock (an operator's host that is off shifts nothing)."""
    # --since before --until is the model's own check (RepublishPaymentsParams.__post_init__), made before the
    # probe by Tuning.validate.
    config: catalogue.RepublishPaymentsParams = step.config
    with ctx.engine.connect() as conn:
        db_now = database_now(conn)
    since, until = config.since, config.until
    end = until if isinstance(until, datetime) else db_now
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
    """What step 1 found and did (rolled back on a dry run)."""

    unnotified: int = 0  # payments of the window nobody was notified of
    on_topic: int = 0  # of those, events the topic already holds
    recorded: int = 0  # unsent outbox rows whose event is on the topic, marked PUBLISHED
    send: list[str] = field(default_factory=list)  # event ids to publish, in payment order
    partitions: int = 0
    read: int = 0  # messages read from the topic


def read_payments_topic(ctx: Context, since: datetime) -> TopicRead:
    """Event id → copies on ``payment.completed`` from ``since`` (every partition, to the end)."""
    from concertops.sources.topic_read import read_topic

    if not ctx.profile.kafka_bootstrap_servers:
        raise SourceUnreachable("no Kafka configured", "set kafka_bootstrap_servers in the profile")
    found = read_topic(
        ctx.profile.kafka_bootstrap_servers,
        TOPIC_PAYMENT_COMPLETED,
        since,
        max_messages=READ_MAX_MESSAGES,
        max_seconds=READ_MAX_SECONDS,
    )
    if not found.complete:
        raise SourceUnreachable(
            f"{TOPIC_PAYMENT_COMPLETED} could not be read to its end within {found.bound} "
            f"({found.messages} messages read)",
            "narrow --since/--until",
        )
    return found


def decide(conn: sa.Connection, span: Window, limit: int, topic: Callable[[datetime], TopicRead]) -> Decision:
    """Step 1, inside the caller's transaction (see the module's docstring)."""
    rows = conn.execute(
        sa.select(payment)
        .where(
            payment.c.created_at >= span.since,
            payment.c.created_at <= span.until,
            ~sa.exists().where(notification.c.payment_id == payment.c.payment_id),
        )
        .order_by(payment.c.created_at, payment.c.payment_id)
    ).all()
    if len(rows) > limit:
        raise UsageError(
            f"{len(rows)} payment events to re-publish, over --max-events {limit}",
            "raise --max-events, or narrow --since/--until",
        )
    payloads = {
        events.event_id(TOPIC_PAYMENT_COMPLETED, r.payment_id): (
            r.payment_id,
            events.payment_completed(r.payment_id, r.reservation_id, r.user_id, r.amount, r.created_at),
        )
        for r in rows
    }
    status = _lock_rows(conn, list(payloads))
    read = topic(span.since - READ_MARGIN)  # read with the rows locked: no sender is mid-way now
    on_topic = read.ids
    decision = Decision(unnotified=len(rows), partitions=read.partitions, read=read.messages)
    delivered = [e for e, s in status.items() if s in _UNSENT and e in on_topic]
    for chunk in _chunks(delivered):
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id.in_(chunk))
            .values(status="PUBLISHED", published_at=database_now(conn))
        )
    decision.recorded = len(delivered)
    at = database_now(conn)
    new: list[dict[str, object]] = []
    lost: list[str] = []
    for event, (payment_id, payload) in payloads.items():
        if event in on_topic:
            decision.on_topic += 1
            continue
        decision.send.append(event)
        if event not in status:
            new.append(events.outbox_row(TOPIC_PAYMENT_COMPLETED, payment_id, payload, at))
        elif status[event] == "PUBLISHED":
            lost.append(event)
    if new:
        conn.execute(outbox_event.insert(), new)
    for chunk in _chunks(lost):
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id.in_(chunk))
            .values(status="PENDING", published_at=None)
        )
    return decision


def _lock_rows(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    """Outbox status of ``ids`` and of every unsent row of the topic, locked until the caller's commit."""
    locking = conn.dialect.name != "sqlite"
    found: dict[str, str] = {}
    queries = [
        sa.select(outbox_event.c.event_id, outbox_event.c.status).where(
            outbox_event.c.topic == TOPIC_PAYMENT_COMPLETED, outbox_event.c.status.in_(_UNSENT)
        )
    ]
    queries += [
        sa.select(outbox_event.c.event_id, outbox_event.c.status).where(outbox_event.c.event_id.in_(chunk))
        for chunk in _chunks(ids)
    ]
    for query in queries:
        rows = conn.execute(query.with_for_update() if locking else query).all()
        found.update((event, status) for event, status in rows)
    return found


def _chunks(items: list[str], size: int = 1000) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def publish_batch(conn: sa.Connection, producer: Producer, ids: list[str]) -> tuple[list[str], int, str]:
    """Send those of ``ids`` still unsent and free; (the ids acked, how many failed, the last id tried).

    Outside any transaction of the caller's: the rows are claimed (SENDING, committed) before the send, so
    neither the service's relay (it takes PENDING rows only) nor anyone else sends them again if this
    process dies before it records the broker's answer; a rerun then decides them from the topic. Rows
    another sender holds are not returned, and not sent."""
    query = (
        sa.select(
            outbox_event.c.event_id, outbox_event.c.topic, outbox_event.c.aggregate_id, outbox_event.c.payload
        )
        .where(outbox_event.c.event_id.in_(ids), outbox_event.c.status.in_(_UNSENT))
        .order_by(outbox_event.c.created_at, outbox_event.c.event_id)
    )
    if conn.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    with conn.begin():
        rows = conn.execute(query).all()
        if rows:
            conn.execute(
                outbox_event.update()
                .where(outbox_event.c.event_id.in_([r.event_id for r in rows]))
                .values(status="SENDING", published_at=database_now(conn))  # when claimed, until sent
            )
    if not rows:
        return [], 0, ""
    messages = [
        Outgoing(
            r.topic,
            r.aggregate_id,
            r.payload.encode(),
            {"event_id": r.event_id, "republished_by": "concertops"},
        )
        for r in rows
    ]
    producer.send(messages)
    acked = [r.event_id for r, m in zip(rows, messages, strict=True) if m.acked]
    failed = [(r.event_id, m.error) for r, m in zip(rows, messages, strict=True) if not m.acked]
    with conn.begin():
        if acked:
            conn.execute(
                outbox_event.update()
                .where(outbox_event.c.event_id.in_(acked), outbox_event.c.status == "SENDING")
                .values(status="PUBLISHED", published_at=database_now(conn))
            )
        for event, error in failed:  # not acknowledged: maybe on the topic, maybe not; PENDING for a rerun
            conn.execute(
                outbox_event.update()
                .where(outbox_event.c.event_id == event)
                .values(
                    status="PENDING", attempts=outbox_event.c.attempts + 1, last_error=(error or "")[:500]
                )
            )
    return acked, len(failed), rows[-1].event_id


def _unsent(conn: sa.Connection, ids: list[str]) -> list[str]:
    """Those of ``ids`` whose rows are not PUBLISHED yet (another sender may hold them), in order."""
    left: set[str] = set()
    for chunk in _chunks(ids):
        left.update(
            conn.execute(
                sa.select(outbox_event.c.event_id).where(
                    outbox_event.c.event_id.in_(chunk), outbox_event.c.status.in_(_UNSENT)
                )
            ).scalars()
        )
    return [e for e in ids if e in left]


@dataclass
class RepublishPayments:
    step: Step
    span: Window | None = None

    def _limits(self) -> tuple[int, int, float]:
        config: catalogue.RepublishPaymentsParams = self.step.config
        return config.max_events, config.batch, float(config.max_rate)

    def _decide(self, ctx: Context, keep: bool) -> Decision:
        limit, _batch, _rate = self._limits()
        assert self.span is not None
        with ctx.engine.connect() as conn:
            tx = conn.begin()
            try:
                decision = decide(conn, self.span, limit, lambda since: read_payments_topic(ctx, since))
            except BaseException:
                tx.rollback()
                raise
            if keep:
                tx.commit()
            else:
                tx.rollback()
        return decision

    def prepare(self, ctx: Context) -> str:
        _limit, _batch, rate = self._limits()  # ranges were checked by the step's model
        self.span = window(ctx, self.step)
        span = f"{self.span.since:%H:%M:%S} to {self.span.until:%H:%M:%S} UTC ({self.span.origin})"
        try:
            found = self._decide(ctx, keep=False)  # decided for real, then rolled back
        except SourceUnreachable as exc:
            return f"payments {span}: cannot tell which events are missing: {exc}"
        return (
            f"payments {span}: {found.unnotified} without a notification, {found.on_topic} of them "
            f"already on {TOPIC_PAYMENT_COMPLETED} ({found.read} message(s) of {found.partitions} "
            f"partition(s) read); publish the {len(found.send)} missing at most {rate:g}/s"
        )

    def run(self, ctx: Context) -> Outcome:
        _limit, batch, rate = self._limits()
        assert self.span is not None
        try:
            found = self._decide(ctx, keep=not ctx.dry_run)
        except SourceUnreachable as exc:
            return Outcome("failed", 0, f"nothing published: cannot tell which events are missing ({exc})")
        summary = (
            f"{found.unnotified} payment(s) without a notification; {found.on_topic} already on the topic"
            + (f" ({found.recorded} unsent row(s) found delivered, marked)" if found.recorded else "")
        )
        if ctx.dry_run:
            ctx.would(
                f"publish {len(found.send)} {TOPIC_PAYMENT_COMPLETED} event(s), oldest payment first, "
                f"keyed by payment, in batches of {batch}, at most {rate:g}/s"
            )
            return Outcome("ok", len(found.send), f"{summary}; would publish {len(found.send)} (rolled back)")
        if not found.send:
            return Outcome("ok", 0, f"{summary}; nothing to publish", changed=found.recorded > 0)
        try:
            producer = Producer(ctx.profile.kafka_bootstrap_servers)
            producer.check((TOPIC_PAYMENT_COMPLETED,))
        except ConcertopsError as exc:
            # Queued rows wait in the outbox: the service's relay sends them when the broker is back.
            return Outcome(
                "failed", 0, f"{summary}; {len(found.send)} queued, not published: {exc}", changed=True
            )
        sent, failed, last = self._publish(ctx, producer, found.send, batch, rate)
        detail = f"{summary}; published {sent} of {len(found.send)}"
        if failed:
            return Outcome(
                "failed",
                sent,
                f"{detail}; {failed} not acknowledged, left PENDING after {last or 'the start'}: rerun",
            )
        return self._read_back(ctx, found.send, sent, detail)

    def _read_back(self, ctx: Context, sent_ids: list[str], sent: int, detail: str) -> Outcome:
        """Step 3: the topic holds every event the run was to publish; a copy too many is reported."""
        assert self.span is not None
        try:
            on_topic = read_payments_topic(ctx, self.span.since - READ_MARGIN).ids
        except SourceUnreachable as exc:
            return Outcome("failed", sent, f"{detail}; not read back: {exc}", changed=True)
        absent = [e for e in sent_ids if e not in on_topic]
        doubled = sum(on_topic[e] - 1 for e in sent_ids if on_topic.get(e, 0) > 1)
        present = len(sent_ids) - len(absent)
        checked = f"read back: {present} of {len(sent_ids)} on the topic, {doubled} duplicate(s)"
        if absent:
            return Outcome("failed", sent, f"{detail}; {checked}: rerun", changed=True)
        return Outcome("ok", sent, f"{detail}; {checked}", changed=True)

    def _publish(
        self, ctx: Context, producer: Producer, ids: list[str], batch: int, rate: float
    ) -> tuple[int, int, str]:
        """Send ``ids`` in order; rows another sender holds (the service's relay) are left to it and waited
        for, at most ``IDLE_WAIT_S`` without progress."""
        bar = ctx.progress("re-publish", len(ids))
        sent, started, last = 0, time.monotonic(), ""
        idle_since: float | None = None
        todo = list(ids)
        try:
            with ctx.engine.connect() as conn:
                while todo:
                    ctx.ensure_locked()
                    chunk, todo = todo[:batch], todo[batch:]
                    acked, failed, last_id = publish_batch(conn, producer, chunk)
                    sent += len(acked)
                    last = last_id or last
                    bar.advance(len(acked))
                    if failed:
                        return sent, failed, last
                    done = set(acked)
                    held = [e for e in chunk if e not in done]
                    if held:
                        with conn.begin():  # in a transaction of its own: the next batch begins clean
                            held = _unsent(conn, held)
                    if held:
                        todo.extend(held)  # another sender has them; tried again after the rest
                    if not acked:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > IDLE_WAIT_S:
                            ctx.note(f"{len(todo)} event(s) still held by another sender; left to it")
                            break
                        time.sleep(0.2)
                        continue
                    idle_since = None
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # the rate limit
        except LockLost:
            raise
        except Exception as exc:  # the database or the broker went away: what was acked is marked
            ctx.note(f"re-publish stopped: {error_line(exc)}")
            return sent, 1, last
        finally:
            bar.close()
        return sent, 0, last
