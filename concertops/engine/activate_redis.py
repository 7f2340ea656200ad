"""A-3 on a service whose queue lives in Redis sorted sets (the service map's ``queue.store: redis``).

It does what the service's own activator does, now: the oldest WAITING tokens move to the ACTIVE set
(score: the activation time in ms), their hash says ACTIVE with a new ``expiresAt`` and TTL. It stays within
the service's ``max_active_tokens`` (a deploy constant) minus the tokens ACTIVE now, and at most the step's
``max_tokens``. A token whose hash is gone (its TTL ran out) or whose ``expiresAt`` has passed is left as it
is: the service's own clean-up removes it. One Lua script does the whole move, so the service's activator,
running at the same moment, can never push ACTIVE past the ceiling with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step

TOKEN_TTL_S = 600  # the service's token TTL (10 minutes), renewed on activation as its activator does

# KEYS: waiting, active. ARGV: token key prefix, slots wanted, ceiling, now (ms), now (ISO),
# new expiresAt (ISO), TTL (s), dry run (1/0). Returns {activated, skipped as expired, active after}.
_ACTIVATE = """
local waiting, active = KEYS[1], KEYS[2]
local prefix, want, ceiling = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now_ms, now_iso, expires_iso, ttl, dry = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1'
local free = ceiling - redis.call('ZCARD', active)
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
return {activated, skipped, redis.call('ZCARD', active)}
"""


@dataclass
class RedisActivate:
    step: Step
    blocked: str = ""

    def _keys(self, ctx: Context) -> tuple[str, str, str, int]:
        queue = ctx.shape.queue
        ceiling = ctx.shape.deploy_constants.get("max_active_tokens")
        if queue.waiting is None or queue.active is None or queue.token is None or ceiling is None:
            raise UsageError(
                f"activate-now: the service map {ctx.shape.name} needs queue.waiting, queue.active, "
                "queue.token and deploy_constants.max_active_tokens",
                "add them to the map",
            )
        prefix = queue.token.key.split("{", 1)[0]
        return queue.waiting.key, queue.active.key, prefix, int(ceiling.value)

    def _client(self, ctx: Context) -> Any:
        import redis

        if not ctx.profile.redis_url:
            raise UsageError("activating tokens needs the service's Redis", "set redis_url in the profile")
        return redis.Redis.from_url(ctx.profile.redis_url, socket_timeout=10, decode_responses=True)

    def _move(self, ctx: Context, dry: bool) -> tuple[int, int, int, int]:
        waiting, active, prefix, ceiling = self._keys(ctx)
        client = self._client(ctx)
        try:
            before = int(client.zcard(active))
            # The service's clock is the one that wrote expiresAt: Redis's own TIME is the closest to it.
            seconds, micros = client.time()
            now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
            limit = int(self.step.config.max_tokens)
            result = client.eval(
                _ACTIVATE,
                2,
                waiting,
                active,
                prefix,
                limit,
                ceiling,
                int(now.timestamp() * 1000),
                _iso(now),
                _iso(now + timedelta(seconds=TOKEN_TTL_S)),
                TOKEN_TTL_S,
                "1" if dry else "0",
            )
            activated, skipped, _after = (int(x) for x in result)
        finally:
            client.close()
        return activated, skipped, before, ceiling

    def prepare(self, ctx: Context) -> str:
        activated, skipped, active, ceiling = self._move(ctx, dry=True)
        expired = f"; {skipped} expired token(s) left to the service's clean-up" if skipped else ""
        if not activated:
            if active > ceiling:
                self.blocked = (
                    f"activates none: {active} tokens are ACTIVE, more than max_active_tokens={ceiling}: the "
                    "map's deploy constant is stale (a deploy raised it?), and nothing is activated on it; "
                    "correct deploy_constants.max_active_tokens in the service map"
                )
                return self.blocked
            if active >= ceiling:
                self.blocked = (
                    f"activates none: max_active_tokens={ceiling} (a deploy constant) is filled by {active} "
                    "ACTIVE; a larger ceiling is a deploy (the more-active-tokens hand-off)"
                )
                return self.blocked
            return "no WAITING token to activate" + expired
        return f"activate {activated} WAITING token(s) now ({active} ACTIVE of {ceiling}){expired}"

    def run(self, ctx: Context) -> Outcome:
        activated, skipped, _active, _ceiling = self._move(ctx, dry=ctx.dry_run)
        left = f"; {skipped} expired token(s) left alone" if skipped else ""
        if ctx.dry_run:
            if not activated and self.blocked:
                return Outcome("ok", 0, self.blocked)
            return Outcome("ok", activated, f"would activate {activated} WAITING token(s){left}")
        if not activated:
            return Outcome("skipped", 0, (self.blocked or "no WAITING token could be activated") + left)
        return Outcome("ok", activated, f"activated {activated} WAITING token(s){left}", changed=True)


def _iso(moment: datetime) -> str:
    """As JavaScript's ``toISOString`` writes it (what the service compares against)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
