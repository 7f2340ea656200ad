"""Re-publishing through the service's outbox (the map's ``acts.outbox``): how ``republish`` reads and acts
on a service whose relay sends what its outbox holds.

- **gather**, inside one transaction: the window's payments that nobody was notified of (the map's
  ``notification`` table), their outbox rows and the topic's unsent ones, locked (``FOR UPDATE``, which
  waits for a batch the service's relay has in flight); then the topic, read with the rows locked.
- **apply** a decision in the same transaction: an unsent row whose event is on the topic is marked
  PUBLISHED (a sender stopped between the broker's acknowledgement and its commit); an event not on the
  topic is queued: written to the outbox if missing, PENDING again if it was marked sent (a memory-only
  broker loses what it held). The event id is deterministic per payment, so it is the same event either way.
- **publish** exactly the queued events, oldest payment first, keyed by aggregate, in batches whose rows
  are claimed first (``FOR UPDATE SKIP LOCKED`` as the relay does, so the two never send one row); a row
  is PUBLISHED only after the broker acknowledged it. Stopped or failed, what was not acknowledged stays
  PENDING, and a rerun decides again from the topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from concertops.contract import events
from concertops.contract.mapped_sql import flat_outbox, named
from concertops.contract.service_map import ServiceMap
from concertops.engine.action_api import Context
from concertops.engine.locking import LockLost
from concertops.redact import error_line
from concertops.sources.database import database_now
from concertops.sources.producer import Outgoing, Producer

IDLE_WAIT_S = 10.0
# SENDING: claimed by a sender that had not recorded the broker's answer (it may have died mid-batch).
UNSENT = ("PENDING", "FAILED", "SENDING")


class Outbox:
    """The map's payment, notification and outbox tables (the outbox in the flat contract's columns)."""

    def __init__(self, shape: ServiceMap, topic: str) -> None:
        self.topic = topic
        self.payment = named(
            shape, "payment", "reservation", "user", "amount", "created_at", step="republish"
        )
        self.notification = named(shape, "notification", "payment", step="republish")
        self.outbox = flat_outbox(shape)

    def candidates(
        self, conn: sa.Connection, since: Any, until: Any
    ) -> list[tuple[str, Any, dict[str, Any]]]:
        """(event id, payment key, payload) of the window's payments nobody was notified of, in order."""
        p, n = self.payment, self.notification
        rows = conn.execute(
            sa.select(p["key"], p["reservation"], p["user"], p["amount"], p["created_at"])
            .where(
                p["created_at"] >= since,
                p["created_at"] <= until,
                ~sa.exists().where(n["payment"] == p["key"]),
            )
            .order_by(p["created_at"], p["key"])
        ).all()
        found = []
        for key, reservation, user, amount, created_at in rows:
            payload = events.payment_completed(key, reservation, user, amount, created_at)
            found.append((payload["event_id"], key, payload))
        return found

    def lock_rows(self, conn: sa.Connection, ids: list[str]) -> dict[str, str]:
        """Outbox status of ``ids`` and of every unsent row of the topic, locked until the caller's commit."""
        o = self.outbox
        locking = conn.dialect.name != "sqlite"
        found: dict[str, str] = {}
        queries = [
            sa.select(o["event_id"], o["status"]).where(o["topic"] == self.topic, o["status"].in_(UNSENT))
        ]
        queries += [sa.select(o["event_id"], o["status"]).where(o["event_id"].in_(c)) for c in chunks(ids)]
        for query in queries:
            rows = conn.execute(query.with_for_update() if locking else query).all()
            found.update((event, status) for event, status in rows)
        return found

    def apply(
        self,
        conn: sa.Connection,
        delivered: list[str],
        new: list[tuple[str, Any, dict[str, Any]]],
        lost: list[str],
    ) -> None:
        """Inside the gather's transaction: mark the delivered, queue the new and the lost."""
        o = self.outbox
        for chunk in chunks(delivered):
            conn.execute(
                o.table.update()
                .where(o["event_id"].in_(chunk))
                .values({"status": "PUBLISHED", "published_at": database_now(conn)})
            )
        at = database_now(conn)
        if new:
            rows = [events.outbox_row(self.topic, key, payload, at) for _event, key, payload in new]
            conn.execute(o.table.insert(), [o.row(r) for r in rows])
        for chunk in chunks(lost):
            conn.execute(
                o.table.update()
                .where(o["event_id"].in_(chunk))
                .values({"status": "PENDING", "published_at": None})
            )

    def publish_batch(
        self, conn: sa.Connection, producer: Producer, ids: list[str]
    ) -> tuple[list[str], int, str]:
        """Send those of ``ids`` still unsent and free; (the ids acked, how many failed, the last id tried).

        Outside any transaction of the caller's: the rows are claimed (SENDING, committed) before the send,
        so neither the service's relay (it takes PENDING rows only) nor anyone else sends them again if this
        process dies before it records the broker's answer; a rerun then decides them from the topic. Rows
        another sender holds are not returned, and not sent."""
        o = self.outbox
        query = (
            sa.select(o["event_id"], o["topic"], o["aggregate_id"], o["payload"])
            .where(o["event_id"].in_(ids), o["status"].in_(UNSENT))
            .order_by(o["created_at"], o["event_id"])
        )
        if conn.dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        with conn.begin():
            rows = conn.execute(query).all()
            if rows:
                conn.execute(
                    o.table.update()
                    .where(o["event_id"].in_([r[0] for r in rows]))
                    .values({"status": "SENDING", "published_at": database_now(conn)})  # claimed, until sent
                )
        if not rows:
            return [], 0, ""
        messages = [
            Outgoing(topic, aggregate, payload.encode(), {"event_id": event, "republished_by": "concertops"})
            for event, topic, aggregate, payload in rows
        ]
        producer.send(messages)
        acked = [r[0] for r, m in zip(rows, messages, strict=True) if m.acked]
        failed = [(r[0], m.error) for r, m in zip(rows, messages, strict=True) if not m.acked]
        with conn.begin():
            if acked:
                conn.execute(
                    o.table.update()
                    .where(o["event_id"].in_(acked), o["status"] == "SENDING")
                    .values({"status": "PUBLISHED", "published_at": database_now(conn)})
                )
            for (
                event,
                error,
            ) in failed:  # not acknowledged: maybe on the topic, maybe not; PENDING for a rerun
                conn.execute(
                    o.table.update()
                    .where(o["event_id"] == event)
                    .values(
                        {
                            "status": "PENDING",
                            "attempts": o["attempts"] + 1,
                            "last_error": (error or "")[:500],
                        }
                    )
                )
        return acked, len(failed), rows[-1][0]

    def unsent(self, conn: sa.Connection, ids: list[str]) -> list[str]:
        """Those of ``ids`` whose rows are not PUBLISHED yet (another sender may hold them), in order."""
        o = self.outbox
        left: set[str] = set()
        for chunk in chunks(ids):
            left.update(
                conn.execute(
                    sa.select(o["event_id"]).where(o["event_id"].in_(chunk), o["status"].in_(UNSENT))
                ).scalars()
            )
        return [e for e in ids if e in left]

    def publish(
        self,
        ctx: Context,
        producer: Producer,
        ids: list[str],
        batch: int,
        rate: float,
        tally: Callable[[int], None],
    ) -> tuple[int, int, str]:
        """Send ``ids`` in order; rows another sender holds (the service's relay) are left to it and waited
        for, at most ``IDLE_WAIT_S`` without progress. (sent, failed, the last id tried)."""
        sent, started, last = 0, time.monotonic(), ""
        idle_since: float | None = None
        todo = list(ids)
        try:
            with ctx.engine.connect() as conn:
                while todo:
                    ctx.ensure_locked()
                    chunk, todo = todo[:batch], todo[batch:]
                    acked, failed, last_id = self.publish_batch(conn, producer, chunk)
                    sent += len(acked)
                    last = last_id or last
                    tally(len(acked))
                    if failed:
                        return sent, failed, last
                    done = set(acked)
                    held = [e for e in chunk if e not in done]
                    if held:
                        with conn.begin():  # in a transaction of its own: the next batch begins clean
                            held = self.unsent(conn, held)
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
        return sent, 0, last


def chunks(items: list[str], size: int = 1000) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
