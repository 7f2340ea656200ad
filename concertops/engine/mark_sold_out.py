"""A-2: mark the schedules without a free seat sold out."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from concertops.contract.schema import schedule, seat
from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step


@dataclass
class MarkSoldOut:
    """Mark schedules without a free seat, so the service refuses them before taking a lock or a connection.
    The service lifts the mark itself when a seat comes back (an expired hold)."""

    step: Step
    found: list[int] = field(default_factory=list)

    def _candidates(self, conn: sa.Connection, limit: int) -> list[int]:
        available = sa.func.sum(sa.case((seat.c.status == "AVAILABLE", 1), else_=0))
        full = sa.select(seat.c.schedule_id).group_by(seat.c.schedule_id).having(available == 0).subquery()
        return list(
            conn.execute(
                sa.select(schedule.c.schedule_id)
                .where(
                    schedule.c.schedule_id.in_(sa.select(full.c.schedule_id)), schedule.c.sold_out.is_(False)
                )
                .order_by(schedule.c.schedule_id)
                .limit(limit)
            ).scalars()
        )

    def prepare(self, ctx: Context) -> str:
        limit = self.step.config.max_schedules
        with ctx.engine.connect() as conn:
            self.found = self._candidates(conn, limit + 1)
        if not self.found:
            return "no unmarked sold-out schedule"
        if len(self.found) > limit:
            raise UsageError(
                f"{self.step.id}: more than {limit} schedules to mark",
                "raise --max-schedules if that is right",
            )
        return f"mark {len(self.found)} schedule(s) sold out: {', '.join(map(str, self.found[:10]))}"

    def run(self, ctx: Context) -> Outcome:
        limit = self.step.config.max_schedules
        conn = ctx.engine.connect()
        try:
            tx = conn.begin()
            ids = self._candidates(conn, limit)
            marked = 0
            if ids:
                # Still full at this moment: a seat freed since prepare() keeps its schedule on sale.
                available = sa.func.sum(sa.case((seat.c.status == "AVAILABLE", 1), else_=0))
                still_full = (
                    sa.select(seat.c.schedule_id)
                    .where(seat.c.schedule_id.in_(ids))
                    .group_by(seat.c.schedule_id)
                    .having(available == 0)
                )
                full_now = list(conn.execute(still_full).scalars())
                if full_now:
                    marked = conn.execute(
                        schedule.update()
                        .where(schedule.c.schedule_id.in_(full_now), schedule.c.sold_out.is_(False))
                        .values(sold_out=True)
                    ).rowcount
            if ctx.dry_run:
                tx.rollback()
                return Outcome("ok", marked, f"would mark {marked} schedule(s) sold out (rolled back)")
            tx.commit()
        finally:
            conn.close()
        if not marked:
            return Outcome("ok", 0, "nothing to mark: no unmarked sold-out schedule")
        return Outcome("ok", marked, f"marked {marked} schedule(s) sold out", changed=True)
