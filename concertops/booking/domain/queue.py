"""The waiting queue: tokens start WAITING and at most ``max_active_tokens`` are ACTIVE at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from concertops.booking.domain.clock import utcnow
from concertops.booking.domain.errors import DomainError, not_found
from concertops.contract.schema import queue_token


@dataclass(frozen=True)
class ActivationRun:
    activated: int
    expired: int
    waiting: int
    active: int
    oldest_waiting_age_s: float


def issue(conn: sa.Connection, user_id: int) -> str:
    token = str(uuid.uuid4())
    conn.execute(
        queue_token.insert().values(token_id=token, user_id=user_id, status="WAITING", created_at=utcnow())
    )
    return token


def status(conn: sa.Connection, token: str) -> dict[str, object]:
    row = conn.execute(sa.select(queue_token).where(queue_token.c.token_id == token)).first()
    if row is None:
        raise not_found("queue token", token)
    position = None
    if row.status == "WAITING":
        position = conn.execute(
            sa.select(sa.func.count())
            .select_from(queue_token)
            .where(queue_token.c.status == "WAITING", queue_token.c.created_at <= row.created_at)
        ).scalar_one()
    return {"token": token, "status": row.status, "position": position}


def require_active(conn: sa.Connection, token: str | None) -> int:
    """The token's user id, if the token is ACTIVE and not past its expiry."""
    if not token:
        raise DomainError(401, "token_required", "an ACTIVE queue token is required (X-Queue-Token)")
    row = conn.execute(
        sa.select(queue_token.c.user_id, queue_token.c.status, queue_token.c.expires_at).where(
            queue_token.c.token_id == token
        )
    ).first()
    if row is None:
        raise not_found("queue token", token)
    if row.status != "ACTIVE" or (row.expires_at is not None and row.expires_at < utcnow()):
        raise DomainError(403, "token_not_active", f"queue token is {row.status}, not ACTIVE")
    return int(row.user_id)


def release(conn: sa.Connection, token: str) -> None:
    conn.execute(
        queue_token.update()
        .where(queue_token.c.token_id == token, queue_token.c.status == "ACTIVE")
        .values(status="EXPIRED")
    )


def activate(conn: sa.Connection, max_active: int, ttl_s: int) -> ActivationRun:
    """Expire overdue ACTIVE tokens, then activate the oldest WAITING ones up to ``max_active``.

    Callers make sure only one activation runs at a time (see the activator worker's lock).
    """
    now = utcnow()
    expired = conn.execute(
        queue_token.update()
        .where(queue_token.c.status == "ACTIVE", queue_token.c.expires_at < now)
        .values(status="EXPIRED")
    ).rowcount
    active = conn.execute(
        sa.select(sa.func.count()).select_from(queue_token).where(queue_token.c.status == "ACTIVE")
    ).scalar_one()
    free = max(0, max_active - active)
    activated = 0
    if free:
        ids = (
            conn.execute(
                sa.select(queue_token.c.token_id)
                .where(queue_token.c.status == "WAITING")
                .order_by(queue_token.c.created_at, queue_token.c.token_id)
                .limit(free)
            )
            .scalars()
            .all()
        )
        if ids:
            activated = conn.execute(
                queue_token.update()
                .where(queue_token.c.token_id.in_(ids), queue_token.c.status == "WAITING")
                .values(status="ACTIVE", activated_at=now, expires_at=now + timedelta(seconds=ttl_s))
            ).rowcount
    waiting, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(queue_token.c.created_at)).where(
            queue_token.c.status == "WAITING"
        )
    ).one()
    age = (now - oldest).total_seconds() if oldest else 0.0
    return ActivationRun(activated, expired, int(waiting), int(active) + activated, age)
