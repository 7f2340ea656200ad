"""Reconciliation: the SUCCESS payments of a window whose ``payment.completed`` event is not on the topic.

For a service with no outbox (its producer publishes after the commit, and B-1/B-4 lose the event), the
payment table and the topic are the only two records: a payment is published when the topic holds a
message about it (matched by the payment's key in the payload: the envelope's own event id is not unique).
The window is in the zone the service's payment rows show (``paid_at`` is written in it:
concertops.sources.clock); the newest ``settle`` seconds are left
out (their publish may still be retrying). The topic is read by time from the window's start, less a
margin for the service host's clock, to each partition's end, bounded in messages and seconds: a read that
hit a bound decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from concertops.contract.binding import PAYMENT_COLUMNS
from concertops.contract.envelope import payment_of
from concertops.contract.service_map import ServiceMap
from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line
from concertops.sources.clock import ZoneReading, ZoneUnreadable, read_zone
from concertops.sources.database import database_now
from concertops.sources.sql import names_missing
from concertops.sources.topic_read import TopicRead, read_topic

SOURCE = "kafka"

READ_MARGIN = timedelta(minutes=10)  # the topic is read from this long before the window starts
MAX_MESSAGES = 2_000_000


class Unmappable(Exception):
    """The service map lacks what the reconciliation reads (its payment table's columns, the topic)."""


@dataclass(frozen=True)
class Statements:
    payments: str  # the window's SUCCESS payments, in payment order (bounds in the service's zone)

    @classmethod
    def of(cls, shape: ServiceMap) -> Statements:
        payment, reservation = shape.table("payment"), shape.table("reservation")
        if payment is None or any(payment.column(c) is None for c in PAYMENT_COLUMNS):
            raise Unmappable(f"its payment table lacks one of {', '.join(PAYMENT_COLUMNS)}")
        p = {c: f"p.`{payment.column(c)}`" for c in PAYMENT_COLUMNS}
        seat = "NULL"
        join = ""
        if reservation is not None and reservation.column("seat"):
            seat = f"r.`{reservation.column('seat')}`"
            join = f" LEFT JOIN `{reservation.table}` r ON r.`{reservation.key}` = {p['reservation']}"
        return cls(
            payments=(
                f"SELECT p.`{payment.key}` AS `key`, {p['user']} AS user, {p['reservation']} AS reservation,"
                f" {seat} AS seat, {p['amount']} AS amount, {p['paid_at']} AS paid_at"
                f" FROM `{payment.table}` p{join}"
                f" WHERE {p['status']} = 'SUCCESS' AND {p['paid_at']} >= :start AND {p['paid_at']} < :end"
                f" ORDER BY {p['paid_at']}, p.`{payment.key}`"
            )
        )


@dataclass
class Reconciliation:
    payments: int  # SUCCESS payments of the window
    missing: list[dict[str, Any]] = field(default_factory=list)  # in payment order
    read: TopicRead | None = None
    zone: ZoneReading | None = None  # the zone the window's bounds were taken in

    @property
    def complete(self) -> bool:
        return self.read is not None and self.read.complete

    @property
    def lost_topic(self) -> str:
        """Why the topic is absent, when the broker answered without it and payments of the window exist."""
        if self.read is None or not self.read.absent or not self.payments:
            return ""
        return (
            f"topic {self.read.topic} does not exist on the broker: lost by the broker, or the map names the "
            "wrong topic (`concertops doctor`)"
        )


def topic_of(shape: ServiceMap) -> str:
    topic = shape.topic("payment_completed")
    if topic is None:
        raise Unmappable("it has no payment_completed topic")
    return topic


def reconcile(
    conn: sa.Connection,
    shape: ServiceMap,
    bootstrap: str,
    start: datetime,
    end: datetime,
    max_seconds: float,
    max_messages: int = MAX_MESSAGES,
) -> Reconciliation:
    """Which SUCCESS payments from ``start`` to ``end`` (naive UTC) are not on the topic."""
    sql = Statements.of(shape)
    topic = topic_of(shape)
    zone = read_zone(conn, shape, "payment", now=end)  # ZoneUnreadable: nothing decided
    bounds = {"start": start + zone.offset, "end": end + zone.offset}
    rows = [dict(r._mapping) for r in conn.execute(sa.text(sql.payments), bounds)]
    result = Reconciliation(len(rows), zone=zone)
    # Message times are UTC whatever zone the service writes its rows in.
    result.read = read_topic(
        bootstrap,
        topic,
        start - READ_MARGIN,
        max_messages=max_messages,
        max_seconds=max_seconds,
        identify=payment_of(shape.kafka.envelope),
        absent_ok=True,  # the broker answered without it: every payment of the window is missing from it
    )
    if result.read.complete:
        result.missing = [r for r in rows if str(r["key"]) not in result.read.ids]
    return result


class ReconcileSource:
    """``unpublished`` signals: the count of a window's payments missing from the topic, with the first
    ones as evidence rows."""

    def __init__(self, database_url: str, bootstrap: str, shape: ServiceMap, timeout_s: float) -> None:
        from concertops.sources.database import open_engine

        self.engine = open_engine(database_url, timeout_s, read_timeout_s=timeout_s, pool_wait_s=timeout_s)
        self.bootstrap, self.shape, self.timeout_s = bootstrap, shape, timeout_s

    def observe(self, signal: Signal) -> Observation:
        query = signal.describe_query()
        try:
            with self.engine.connect() as conn:
                now = database_now(conn)
                start = now - timedelta(seconds=signal.window_s)
                end = now - timedelta(seconds=signal.settle_s)
                found = reconcile(conn, self.shape, self.bootstrap, start, end, self.timeout_s * 0.8)
        except Exception as exc:  # SQL or the broker: the signal is UNKNOWN with the reason
            gap = names_missing(exc) or isinstance(exc, ZoneUnreadable)
            return Observation(signal.name, SOURCE, query, error=error_line(exc), map_gap=gap)
        assert found.read is not None
        if not found.complete:
            why = f"the read of {found.read.topic} stopped at {found.read.bound}: nothing decided"
            return Observation(signal.name, SOURCE, query, error=why)
        rows = tuple((str(r["key"]), str(r["user"]), str(r["paid_at"])) for r in found.missing[:10])
        notes = [found.lost_topic, found.zone.note if found.zone else ""]
        return Observation(
            signal.name,
            SOURCE,
            query,
            value=float(len(found.missing)),
            rows=rows,
            columns=("payment", "user", "paid at") if rows else (),
            note="; ".join(n for n in notes if n),
        )

    def close(self) -> None:
        self.engine.dispose()
