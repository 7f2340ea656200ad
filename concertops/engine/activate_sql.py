"""A-3 on a queue kept in SQL: activate the oldest WAITING tokens now."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from concertops.contract import names, settings_store
from concertops.contract.schema import queue_token
from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step


@dataclass
class ActivateWaiting:
    """Activate the oldest WAITING tokens now, within ``max_active_tokens`` (never beyond it), holding the
    service's own activator lock so the two never activate at once."""

    step: Step

    blocked: str = ""  # why the step, as prepared, changes nothing although its signal fires

    def _free_slots(self, conn: sa.Connection, ceiling: int | None = None) -> tuple[int, int, int, int]:
        values, _version = settings_store.current(conn)
        active, waiting = (
            conn.execute(
                sa.select(sa.func.count()).select_from(queue_token).where(queue_token.c.status == status)
            ).scalar_one()
            for status in ("ACTIVE", "WAITING")
        )
        limit = self.step.config.max_tokens
        most = int(values["max_active_tokens"]) if ceiling is None else ceiling
        free = max(0, min(most - int(active), int(waiting), limit))
        return free, int(active), int(waiting), most

    def prepare(self, ctx: Context) -> str:
        # A raise of max_active_tokens earlier in the same plan is in force by the time this step runs.
        raised = ctx.planned.get("max_active_tokens")
        with ctx.engine.connect() as conn:
            free, active, waiting, most = self._free_slots(conn, raised if isinstance(raised, int) else None)
        if not waiting:
            return "no WAITING token"
        if not free:
            self.blocked = (
                f"activates none of {waiting} WAITING token(s): max_active_tokens={most} is filled by "
                f"{active} ACTIVE; let more in with a3 --raise-tokens N (the queue then drains N - {active})"
            )
            return self.blocked
        return f"activate {free} of {waiting} WAITING token(s) now ({active} ACTIVE of {most})"

    def run(self, ctx: Context) -> Outcome:
        import redis

        if not ctx.profile.redis_url:
            raise UsageError(
                "activating tokens needs Redis (the activator's lock)", "set redis_url in the profile"
            )
        lock = redis.Redis.from_url(ctx.profile.redis_url).lock(
            names.ACTIVATOR_LOCK, timeout=30, blocking_timeout=10
        )
        if not lock.acquire():
            return Outcome("failed", 0, "the service's activator kept its lock for 10 s; try again")
        try:
            return self._activate(ctx)
        finally:
            lock.release()

    def _activate(self, ctx: Context) -> Outcome:
        from datetime import timedelta

        from concertops.engine.runs import now

        with ctx.engine.connect() as conn:
            tx = conn.begin()
            free, _active, waiting, _most = self._free_slots(conn)
            activated = 0
            if free:
                values, _version = settings_store.current(conn)
                ids = list(
                    conn.execute(
                        sa.select(queue_token.c.token_id)
                        .where(queue_token.c.status == "WAITING")
                        .order_by(queue_token.c.created_at, queue_token.c.token_id)
                        .limit(free)
                    ).scalars()
                )
                at = now()
                activated = conn.execute(
                    queue_token.update()
                    .where(queue_token.c.token_id.in_(ids), queue_token.c.status == "WAITING")
                    .values(
                        status="ACTIVE",
                        activated_at=at,
                        expires_at=at + timedelta(seconds=int(values["active_token_ttl_s"])),
                    )
                ).rowcount
            if ctx.dry_run:
                tx.rollback()
                return Outcome(
                    "ok", activated, f"would activate {activated} of {waiting} WAITING (rolled back)"
                )
            tx.commit()
        if not activated and waiting:
            # Not a success: the queue still waits. Say why and what would change it.
            return Outcome("skipped", 0, self.blocked or "no free ACTIVE slot: raise max_active_tokens")
        if not activated:
            return Outcome("ok", 0, "nothing to activate")
        return Outcome("ok", activated, f"activated {activated} of {waiting} WAITING token(s)", changed=True)
