"""A-2: mark the schedules without a free seat sold out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from concertops.contract.mapped_sql import Named, named
from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step


@dataclass
class MarkSoldOut:
    """Mark schedules without a free seat, so the service refuses them before taking a lock or a connection.
    The service lifts the mark itself when a seat comes back (an expired hold)."""

    step: Step
    found: list[Any] = field(default_factory=list)

    def _candidates(self, conn: sa.Connection, seat: Named, schedule: Named, limit: int) -> list[Any]:
        available = sa.func.sum(sa.case((seat["status"] == "AVAILABLE", 1), else_=0))
        full = sa.select(seat["schedule"]).group_by(seat["schedule"]).having(available == 0)
        return list(
            conn.execute(
                sa.select(schedule["key"])
                .where(schedule["key"].in_(full), schedule["sold_out"].is_(False))
                .order_by(schedule["key"])
                .limit(limit)
            ).scalars()
        )

    def _tables(self, ctx: Context) -> tuple[Named, Named]:
        return (
            named(ctx.shape, "seat", "schedule", "status", step=self.step.id),
            named(ctx.shape, "schedule", "sold_out", step=self.step.id),
        )

    def gather(self, ctx: Context) -> list[Any]:
        seat, schedule = self._tables(ctx)
        with ctx.engine.connect() as conn:
            return self._candidates(conn, seat, schedule, self.step.config.max_schedules + 1)

    def prepare(self, ctx: Context) -> str:
        self.found, line = decide(self.gather(ctx), self.step.id, self.step.config.max_schedules)
        return line

    def run(self, ctx: Context) -> Outcome:
        """Marks only the schedules the plan found, each still without a free seat at this moment."""
        seat, schedule = self._tables(ctx)
        marked = 0
        with ctx.engine.connect() as conn:
            tx = conn.begin()
            if self.found:
                # Still full now: a seat freed since the plan keeps its schedule on sale.
                available = sa.func.sum(sa.case((seat["status"] == "AVAILABLE", 1), else_=0))
                still_full = (
                    sa.select(seat["schedule"])
                    .where(seat["schedule"].in_(self.found))
                    .group_by(seat["schedule"])
                    .having(available == 0)
                )
                full_now = list(conn.execute(still_full).scalars())
                if full_now:
                    marked = conn.execute(
                        schedule.table.update()
                        .where(schedule["key"].in_(full_now), schedule["sold_out"].is_(False))
                        .values({schedule.name("sold_out"): True})
                    ).rowcount
            if ctx.dry_run:
                tx.rollback()
                return Outcome("ok", marked, f"would mark {marked} schedule(s) sold out (rolled back)")
            tx.commit()
        if not marked:
            return Outcome("ok", 0, "nothing to mark: no unmarked sold-out schedule")
        return Outcome("ok", marked, f"marked {marked} schedule(s) sold out", changed=True)


def decide(found: list[Any], step_id: str, limit: int) -> tuple[list[Any], str]:
    """The schedules to mark and the plan's line; more than ``limit`` is refused (pure)."""
    if not found:
        return [], "no unmarked sold-out schedule"
    if len(found) > limit:
        raise UsageError(
            f"{step_id}: more than {limit} schedules to mark", "raise --max-schedules if that is right"
        )
    return found, f"mark {len(found)} schedule(s) sold out: {', '.join(map(str, found[:10]))}"
