"""The outbox relay: PENDING events to Kafka, marked PUBLISHED only after the broker acknowledged them.

On MySQL/MariaDB the batch is claimed with ``FOR UPDATE SKIP LOCKED`` and held until marked, so several
relays never send the same batch. On SQLite (one writer, the embedded default) the batch is read without
a lock and marked afterwards: at worst an event is sent twice, and consumers deduplicate by event id.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from concertops.booking.db import Database
from concertops.booking.domain.clock import utcnow
from concertops.booking.metrics import Metrics
from concertops.booking.publisher import DELIVERY_TIMEOUT_S, Message, Publisher
from concertops.contract.schema import outbox_event, reservation

log = logging.getLogger(__name__)
BATCH = 100
# Longer than the producer's own delivery timeout: every message has its report before the relay moves on.
SEND_TIMEOUT_S = DELIVERY_TIMEOUT_S + 5.0


def _claim(conn: sa.Connection, limit: int) -> list[sa.Row]:
    query = (
        sa.select(
            outbox_event.c.event_id, outbox_event.c.topic, outbox_event.c.aggregate_id, outbox_event.c.payload
        )
        .where(outbox_event.c.status == "PENDING")
        .order_by(outbox_event.c.created_at, outbox_event.c.event_id)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).all())


def _send(publisher: Publisher, rows: list[sa.Row]) -> list[Message]:
    messages = [
        Message(topic=r.topic, key=r.aggregate_id, value=r.payload.encode(), headers={"event_id": r.event_id})
        for r in rows
    ]
    publisher.send_many(messages, SEND_TIMEOUT_S)
    return messages


def _mark(conn: sa.Connection, rows: list[sa.Row], messages: list[Message]) -> tuple[int, int]:
    sent = [r.event_id for r, m in zip(rows, messages, strict=True) if not m.error]
    if sent:
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id.in_(sent), outbox_event.c.status == "PENDING")
            .values(status="PUBLISHED", published_at=utcnow())
        )
    failed = [(r.event_id, m.error) for r, m in zip(rows, messages, strict=True) if m.error]
    for event, error in failed:
        conn.execute(
            outbox_event.update()
            .where(outbox_event.c.event_id == event)
            .values(attempts=outbox_event.c.attempts + 1, last_error=(error or "")[:500])
        )
    return len(sent), len(failed)


def relay_once(db: Database, publisher: Publisher, limit: int = BATCH) -> tuple[int, int]:
    """One batch: (published, failed)."""
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            rows = _claim(conn, limit)
        if not rows:
            return 0, 0
        messages = _send(publisher, rows)
        with db.engine.begin() as conn:
            return _mark(conn, rows, messages)
    with db.engine.begin() as conn:
        rows = _claim(conn, limit)
        if not rows:
            return 0, 0
        return _mark(conn, rows, _send(publisher, rows))


def report_backlog(db: Database, metrics: Metrics) -> None:
    with db.engine.connect() as conn:
        count, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(outbox_event.c.created_at)).where(
                outbox_event.c.status != "PUBLISHED"  # SENDING rows of a stopped re-publish are unsent too
            )
        ).one()
        # The same loop keeps B-2's gauge: seats held past their expiry (index on status, held_expires_at).
        overdue = conn.execute(
            sa.select(sa.func.count())
            .select_from(reservation)
            .where(reservation.c.status == "HELD", reservation.c.held_expires_at < utcnow())
        ).scalar_one()
    metrics.outbox_pending.set(count)
    metrics.outbox_oldest_age.set((utcnow() - oldest).total_seconds() if oldest else 0)
    metrics.overdue_holds.set(overdue)


def run(db: Database, publisher: Publisher, metrics: Metrics, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            report_backlog(db, metrics)
            if not publisher.reachable:
                stop.wait(0.5)
                continue
            published, failed = relay_once(db, publisher)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("outbox relay: %s", type(exc).__name__)
            stop.wait(1.0)
            continue
        if failed:
            log.warning("outbox relay: %d events not acknowledged, retrying", failed)
            stop.wait(1.0)
        elif not published:
            stop.wait(0.2)
