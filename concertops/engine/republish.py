"""B-1 / B-4: every payment gets its ``payment.completed`` event, exactly as the service would have sent it.

1. Rebuild: for the payments of the window (``--since``/``--until``; else for B-4 from the first event
   Prometheus saw dropped until now; else the last hour) that have no notification, compute each event
   from the payment row with its deterministic id and queue it in the outbox: written if missing, PENDING
   again if it was marked sent but never arrived (a memory-only broker loses what it held). The id is the
   same, so a consumer that did see it records a duplicate, never a second event.
2. Publish the outbox backlog, oldest first, keyed by aggregate (one partition order per payment), in batches
   whose rows stay locked (``FOR UPDATE SKIP LOCKED``, as the service's relay does, so the two never send the
   same batch); a row is marked PUBLISHED only after the broker acknowledged it. Rate-limited. Stopped or
   failed, the rows not acknowledged stay PENDING: a rerun (or the service's relay) resumes from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from concertops.contract import events
from concertops.contract.names import TOPIC_PAYMENT_COMPLETED
from concertops.contract.schema import notification, outbox_event, payment
from concertops.engine.actions import Context, Outcome
from concertops.engine.audit import now
from concertops.model.errors import ConcertopsError, UsageError
from concertops.model.findings import Step
from concertops.redact import error_line
from concertops.runbooks import actions as catalogue
from concertops.sources.producer import Outgoing, Producer

DEFAULT_WINDOW = timedelta(hours=1)
IDLE_WAIT_S = 10.0


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    origin: str


def window(ctx: Context, step: Step) -> Window:
    config: catalogue.RepublishPayments = step.config
    since, until = config.since, config.until
    end = until if isinstance(until, datetime) else now()
    if isinstance(since, datetime):
        if since >= end:
            raise UsageError(f"--since {since:%Y-%m-%d %H:%M:%S} is not before --until", "swap them")
        return Window(since, end, "--since/--until")
    if config.window == "dropped":
        # From the first dropped event until now: a payment after the last drop may lack its event too.
        found = _dropped_window(ctx)
        if found is not None:
            return Window(found.since, end, found.origin)
    return Window(end - DEFAULT_WINDOW, end, "the last hour")


def _dropped_window(ctx: Context) -> Window | None:
    """When Prometheus saw events dropped in the last hour: that span, a minute wider on each side."""
    if not ctx.profile.prometheus_url:
        return None
    from concertops.sources.prometheus import prometheus

    end = now()
    query = "sum(increase(kafka_events_skipped_total[1m])) > 0"
    try:
        result = prometheus(ctx.profile.prometheus_url, 5.0).query_range(
            query, _utc(end - DEFAULT_WINDOW), _utc(end), "15"
        )
        values = [float(ts) for series in result for ts, _v in series["values"]]
    except Exception:  # Prometheus down or odd: fall back to the default window
        return None
    if not values:
        return None
    first, last = (datetime.fromtimestamp(v, UTC).replace(tzinfo=None) for v in (min(values), max(values)))
    return Window(
        first - timedelta(minutes=2), min(end, last + timedelta(minutes=1)), "Prometheus: events dropped"
    )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)  # the client turns a naive time into the host's zone otherwise


def rebuild(conn: sa.Connection, span: Window, limit: int) -> int:
    """Queue again the events of the window's payments that nobody was notified of; how many.

    A missing event is written to the outbox as PENDING; one marked PUBLISHED whose payment still has no
    notification (dropped, or lost with a broker that keeps nothing across a restart) goes back to PENDING.
    The event id is the same either way, so a consumer that did see it counts a duplicate, not a new event."""
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
        r.payment_id: events.payment_completed(
            r.payment_id, r.reservation_id, r.user_id, r.amount, r.created_at
        )
        for r in rows
    }
    ids = [p["event_id"] for p in payloads.values()]
    present: set[str] = set()
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        present.update(
            conn.execute(
                sa.select(outbox_event.c.event_id).where(outbox_event.c.event_id.in_(chunk))
            ).scalars()
        )
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id.in_(chunk), outbox_event.c.status == "PUBLISHED")
            .values(status="PENDING", published_at=None)
        )
    at = now()
    missing = [(pid, p) for pid, p in payloads.items() if p["event_id"] not in present]
    if missing:
        conn.execute(
            outbox_event.insert(),
            [events.outbox_row(TOPIC_PAYMENT_COMPLETED, pid, p, at) for pid, p in missing],
        )
    return len(rows)


def backlog(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox_event)
            .where(outbox_event.c.status.in_(("PENDING", "FAILED")))
        ).scalar_one()
    )


def publish_batch(conn: sa.Connection, producer: Producer, size: int) -> tuple[int, int, str]:
    """Inside the caller's transaction: send the oldest ``size`` unsent events; (acked, failed, last id)."""
    query = (
        sa.select(
            outbox_event.c.event_id, outbox_event.c.topic, outbox_event.c.aggregate_id, outbox_event.c.payload
        )
        .where(outbox_event.c.status.in_(("PENDING", "FAILED")))
        .order_by(outbox_event.c.created_at, outbox_event.c.event_id)
        .limit(size)
    )
    if conn.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if not rows:
        return 0, 0, ""
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
    if acked:
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id.in_(acked), outbox_event.c.status.in_(("PENDING", "FAILED")))
            .values(status="PUBLISHED", published_at=now())
        )
    failed = [(r.event_id, m.error) for r, m in zip(rows, messages, strict=True) if not m.acked]
    for event, error in failed:
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id == event)
            .values(attempts=outbox_event.c.attempts + 1, last_error=(error or "")[:500])
        )
    return len(acked), len(failed), rows[-1].event_id


@dataclass
class RepublishPayments:
    step: Step
    span: Window | None = None

    def _limits(self) -> tuple[int, int, float]:
        config: catalogue.RepublishPayments = self.step.config
        return config.max_events, config.batch, float(config.max_rate)

    def prepare(self, ctx: Context) -> str:
        limit, _batch, rate = self._limits()  # ranges were checked by the step's model
        self.span = window(ctx, self.step)
        with ctx.engine.connect() as conn:
            tx = conn.begin()
            missing = rebuild(conn, self.span, limit)  # counted for real, then rolled back
            tx.rollback()
            pending = backlog(conn)
        return (
            f"queue the events of {missing} payment(s) nobody was notified of "
            f"{self.span.since:%H:%M:%S} to {self.span.until:%H:%M:%S} UTC ({self.span.origin}); "
            f"publish the outbox backlog ({pending + missing}) at most {rate:g}/s"
        )

    def run(self, ctx: Context) -> Outcome:
        limit, batch, rate = self._limits()
        assert self.span is not None
        with ctx.engine.connect() as conn:
            tx = conn.begin()
            missing = rebuild(conn, self.span, limit)
            if ctx.dry_run:
                tx.rollback()
                pending = backlog(conn)
                ctx.would(
                    f"publish {pending + missing} {TOPIC_PAYMENT_COMPLETED} event(s) from the outbox, oldest "
                    f"first, keyed by payment, in batches of {batch}, at most {rate:g}/s"
                )
                return Outcome(
                    "ok",
                    missing,
                    f"would rebuild {missing} event(s) and publish {pending + missing} (rolled back)",
                )
            tx.commit()
            pending = backlog(conn)
        if not pending:
            return Outcome(
                "ok",
                missing,
                "nothing to publish: every event of the window is already sent",
                changed=missing > 0,
            )
        try:
            producer = Producer(ctx.profile.kafka_bootstrap_servers)
            producer.check((TOPIC_PAYMENT_COMPLETED,))
        except ConcertopsError as exc:
            # Rebuilt rows wait in the outbox: the service's relay sends them when the broker is back.
            return Outcome(
                "ok",
                missing,
                f"rebuilt {missing}; not published ({exc}): {pending} wait in the outbox",
                changed=missing > 0,
            )
        sent, failed, last = self._publish(ctx, producer, pending, batch, rate)
        detail = f"queued {missing} event(s) of payments without a notification; published {sent}"
        if failed:
            return Outcome(
                "failed",
                sent,
                f"{detail}; {failed} not acknowledged, left PENDING after {last or 'the start'}: rerun",
            )
        return Outcome("ok", sent, detail, changed=True)

    def _publish(
        self, ctx: Context, producer: Producer, total: int, batch: int, rate: float
    ) -> tuple[int, int, str]:
        """Send until the backlog is empty; rows another sender holds (the service's relay) are skipped and
        waited for, at most ``IDLE_WAIT_S`` without progress."""
        bar = ctx.progress("re-publish", total)
        sent, started, last = 0, time.monotonic(), ""
        idle_since: float | None = None
        try:
            with ctx.engine.connect() as conn:
                while True:
                    with conn.begin():
                        acked, failed, last_id = publish_batch(conn, producer, batch)
                    sent += acked
                    last = last_id or last
                    bar.advance(acked)
                    if failed:
                        return sent, failed, last
                    if not acked:
                        # In a transaction of its own: the next batch must begin on a clean connection.
                        with conn.begin():
                            left = backlog(conn)
                        if not left:
                            break
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > IDLE_WAIT_S:
                            ctx.note(f"{left} event(s) still held by another sender; left to it")
                            break
                        time.sleep(0.2)
                        continue
                    idle_since = None
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # the rate limit
        except Exception as exc:  # the database or the broker went away: what was acked is marked
            ctx.note(f"re-publish stopped: {error_line(exc)}")
            return sent, 1, last
        finally:
            bar.close()
        return sent, 0, last


@dataclass
class ListDoublePayments:
    """B-1: reservations paid more than once (users paying again after a 500), for refund by a person.
    concertops never refunds: it lists, and the audit row keeps the list."""

    step: Step

    def _rows(self, ctx: Context) -> list[sa.Row]:
        limit = self.step.config.max_rows
        with ctx.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(
                        payment.c.reservation_id,
                        sa.func.count().label("payments"),
                        sa.func.group_concat(payment.c.payment_id).label("payment_ids"),
                    )
                    .group_by(payment.c.reservation_id)
                    .having(sa.func.count() > 1)
                    .order_by(payment.c.reservation_id)
                    .limit(limit)
                ).all()
            )

    def prepare(self, ctx: Context) -> str:
        return "list reservations paid more than once, for refund (never refunded here)"

    def run(self, ctx: Context) -> Outcome:
        rows = self._rows(ctx)
        for r in rows:
            ctx.note(f"refund candidate: reservation {r.reservation_id}, payments {str(r.payment_ids)[:80]}")
        if not rows:
            return Outcome("ok", 0, "no reservation paid twice")
        listing = "; ".join(f"{r.reservation_id}: {r.payment_ids}" for r in rows[:50])
        return Outcome(
            "ok", len(rows), f"{len(rows)} reservation(s) paid more than once, refund by hand: {listing}"
        )
