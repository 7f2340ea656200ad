"""A-3: activate the oldest WAITING tokens now, within ``max_active_tokens`` (never beyond it).

One action for every service; the map's ``queue.store`` says where the queue lives:

- ``sql``: a token table (the map's ``queue.table``). The move runs in one transaction while concertops
  holds the service's activator lock in Redis, so the two never activate at once. The ceiling is the
  runtime setting (or a raise of it earlier in the same plan).
- ``redis``: WAITING and ACTIVE sorted sets and a hash per token. One Lua script moves the oldest WAITING
  tokens (score: the activation time in ms), sets each hash ACTIVE with a new ``expiresAt`` and TTL, and
  skips a token whose hash is gone or whose ``expiresAt`` passed (the service's clean-up removes those), so
  the service's activator, running at the same moment, can never push ACTIVE past the ceiling with it. The
  ceiling is the map's deploy constant.

gather counts ACTIVE and WAITING and reads the ceiling; decide (pure) says how many to activate, or why
none; act moves at most that many, re-counting under the lock (or inside the script).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from concertops.contract import names, settings_store
from concertops.contract.mapped_sql import Named, named
from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step

TOKEN_TTL_S = 600  # a Redis queue's token TTL (10 minutes), renewed on activation as its activator does


@dataclass(frozen=True)
class Queue:
    """What gather saw: tokens ACTIVE and WAITING now, the ceiling, and where the ceiling comes from."""

    active: int
    waiting: int
    ceiling: int
    ceiling_is_deployed: bool  # a deploy constant (a raise is a deploy), not a runtime setting
    expired: int = 0  # WAITING tokens past their expiresAt (Redis), left to the service's clean-up


@dataclass(frozen=True)
class Decision:
    activate: int
    line: str
    blocked: str = ""  # why none, although the signal fires: and what would help


def decide(queue: Queue, max_tokens: int) -> Decision:
    """How many WAITING tokens to activate now: the free ACTIVE slots, at most ``max_tokens`` (pure)."""
    expired = f"; {queue.expired} expired token(s) left to the service's clean-up" if queue.expired else ""
    if not queue.waiting:
        return Decision(0, "no WAITING token" + expired)
    free = max(0, min(queue.ceiling - queue.active, queue.waiting, max_tokens))
    if free:
        return Decision(
            free,
            f"activate {free} of {queue.waiting} WAITING token(s) now ({queue.active} ACTIVE of "
            f"{queue.ceiling}){expired}",
        )
    if queue.active > queue.ceiling and queue.ceiling_is_deployed:
        why = (
            f"activates none: {queue.active} tokens are ACTIVE, more than max_active_tokens={queue.ceiling}: "
            "the map's deploy constant is stale (a deploy raised it?), and nothing is activated on it; "
            "correct deploy_constants.max_active_tokens in the service map"
        )
    elif queue.ceiling_is_deployed:
        why = (
            f"activates none: max_active_tokens={queue.ceiling} (a deploy constant) is filled by "
            f"{queue.active} ACTIVE; a larger ceiling is a deploy (the more-active-tokens hand-off)"
        )
    else:
        why = (
            f"activates none of {queue.waiting} WAITING token(s): max_active_tokens={queue.ceiling} is "
            f"filled by {queue.active} ACTIVE; let more in with a3 --raise-tokens N (the queue then drains "
            f"N - {queue.active})"
        )
    return Decision(0, why, why)


@dataclass
class ActivateWaiting:
    step: Step
    blocked: str = ""  # why the step, as prepared, changes nothing although its signal fires
    decision: Decision | None = None

    def gather(self, ctx: Context) -> Queue:
        if ctx.shape.queue.store == "redis":
            moved = _RedisQueue(ctx).move(self.step.config.max_tokens, dry=True)
            return moved.queue
        raised = ctx.planned.get("max_active_tokens")  # a raise earlier in this plan is in force by then
        with ctx.engine.connect() as conn:
            return _SqlQueue(ctx).count(conn, raised if isinstance(raised, int) else None)

    def prepare(self, ctx: Context) -> str:
        self.decision = decide(self.gather(ctx), self.step.config.max_tokens)
        self.blocked = self.decision.blocked
        return self.decision.line

    def run(self, ctx: Context) -> Outcome:
        limit = self.step.config.max_tokens
        if ctx.shape.queue.store == "redis":
            moved = _RedisQueue(ctx).move(limit, dry=ctx.dry_run)
            activated, waiting = moved.activated, moved.queue.waiting
            left = f"; {moved.queue.expired} expired token(s) left alone" if moved.queue.expired else ""
        else:
            activated, waiting = _SqlQueue(ctx).activate(limit, ctx.dry_run)
            left = ""
        if ctx.dry_run:
            if not activated and self.blocked:
                return Outcome("ok", 0, self.blocked)
            return Outcome("ok", activated, f"would activate {activated} of {waiting} WAITING token(s){left}")
        if not activated and waiting:
            # Not a success: the queue still waits. Say why and what would change it.
            return Outcome(
                "skipped", 0, (self.blocked or "no free ACTIVE slot: raise max_active_tokens") + left
            )
        if not activated:
            return Outcome("ok", 0, "nothing to activate" + left)
        return Outcome(
            "ok", activated, f"activated {activated} of {waiting} WAITING token(s){left}", changed=True
        )


class _SqlQueue:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        table = ctx.shape.queue.table  # the map's validation requires it with store sql
        assert table is not None
        self.tokens: Named = named(
            ctx.shape, table, "status", "created_at", "activated_at", "expires_at", step="activate-now"
        )

    def count(self, conn: sa.Connection, ceiling: int | None = None) -> Queue:
        tokens = self.tokens
        active, waiting = (
            int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(tokens.table).where(tokens["status"] == status)
                ).scalar_one()
            )
            for status in ("ACTIVE", "WAITING")
        )
        values, _version = settings_store.current(conn)
        most = int(values["max_active_tokens"]) if ceiling is None else ceiling
        return Queue(active, waiting, most, ceiling_is_deployed=False)

    def activate(self, limit: int, dry_run: bool) -> tuple[int, int]:
        """(activated, WAITING before), under the service's activator lock."""
        import redis

        if not self.ctx.profile.redis_url:
            raise UsageError(
                "activating tokens needs Redis (the activator's lock)", "set redis_url in the profile"
            )
        lock = redis.Redis.from_url(self.ctx.profile.redis_url).lock(
            names.ACTIVATOR_LOCK, timeout=30, blocking_timeout=10
        )
        if not lock.acquire():
            raise UsageError("the service's activator kept its lock for 10 s", "try again")
        try:
            return self._move(limit, dry_run)
        finally:
            lock.release()

    def _move(self, limit: int, dry_run: bool) -> tuple[int, int]:
        from concertops.engine.runs import now

        tokens = self.tokens
        with self.ctx.engine.connect() as conn:
            tx = conn.begin()
            queue = self.count(conn)
            free = decide(queue, limit).activate
            activated = 0
            if free:
                values, _version = settings_store.current(conn)
                ids = list(
                    conn.execute(
                        sa.select(tokens["key"])
                        .where(tokens["status"] == "WAITING")
                        .order_by(tokens["created_at"], tokens["key"])
                        .limit(free)
                    ).scalars()
                )
                at = now()
                activated = conn.execute(
                    tokens.table.update()
                    .where(tokens["key"].in_(ids), tokens["status"] == "WAITING")
                    .values(
                        {
                            tokens.name("status"): "ACTIVE",
                            tokens.name("activated_at"): at,
                            tokens.name("expires_at"): at
                            + timedelta(seconds=int(values["active_token_ttl_s"])),
                        }
                    )
                ).rowcount
            if dry_run:
                tx.rollback()
            else:
                tx.commit()
        return int(activated), queue.waiting


@dataclass(frozen=True)
class _Moved:
    activated: int
    queue: Queue


# KEYS: waiting, active. ARGV: token key prefix, slots wanted, ceiling, now (ms), now (ISO),
# new expiresAt (ISO), TTL (s), dry run (1/0). Returns {activated, skipped as expired, active before,
# waiting before}.
_ACTIVATE = """
local waiting, active = KEYS[1], KEYS[2]
local prefix, want, ceiling = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now_ms, now_iso, expires_iso, ttl, dry = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1'
local before, queued = redis.call('ZCARD', active), redis.call('ZCARD', waiting)
local free = ceiling - before
if free < want then want = free end
local activated, skipped, rank = 0, 0, 0
while activated < want do
  local member = redis.call('ZRANGE', waiting, rank, rank)[1]
  if not member then break end
  local key = prefix .. member
  local status = redis.call('HGET', key, 'status')
  local expires = redis.call('HGET', key, 'expiresAt')
  if status == 'WAITING' and expires and expires > now_iso then
    if not dry then
      redis.call('HSET', key, 'status', 'ACTIVE', 'expiresAt', expires_iso)
      redis.call('EXPIRE', key, ttl)
      redis.call('ZADD', active, now_ms, member)
      redis.call('ZREM', waiting, member)
    else
      rank = rank + 1
    end
    activated = activated + 1
  else
    skipped = skipped + 1
    rank = rank + 1
  end
end
return {activated, skipped, before, queued}
"""


class _RedisQueue:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        queue = ctx.shape.queue
        ceiling = ctx.shape.deploy_constants.get("max_active_tokens")
        if queue.waiting is None or queue.active is None or queue.token is None or ceiling is None:
            raise UsageError(
                f"activate-now: the service map {ctx.shape.name} needs queue.waiting, queue.active, "
                "queue.token and deploy_constants.max_active_tokens",
                "add them to the map",
            )
        self.waiting, self.active = queue.waiting.key, queue.active.key
        self.prefix, self.ceiling = queue.token.key.split("{", 1)[0], int(ceiling.value)

    def move(self, limit: int, dry: bool) -> _Moved:
        import redis

        if not self.ctx.profile.redis_url:
            raise UsageError("activating tokens needs the service's Redis", "set redis_url in the profile")
        client: Any = redis.Redis.from_url(
            self.ctx.profile.redis_url, socket_timeout=10, decode_responses=True
        )
        try:
            # The service's clock is the one that wrote expiresAt: Redis's own TIME is the closest to it.
            seconds, micros = client.time()
            at = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
            result = client.eval(
                _ACTIVATE,
                2,
                self.waiting,
                self.active,
                self.prefix,
                limit,
                self.ceiling,
                int(at.timestamp() * 1000),
                _iso(at),
                _iso(at + timedelta(seconds=TOKEN_TTL_S)),
                TOKEN_TTL_S,
                "1" if dry else "0",
            )
            activated, skipped, active, waiting = (int(x) for x in result)
        finally:
            client.close()
        return _Moved(activated, Queue(active, waiting - skipped, self.ceiling, True, skipped))


def _iso(moment: datetime) -> str:
    """``2026-11-29T10:00:00.000Z``: the service writes its times with JavaScript's toISOString()."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
