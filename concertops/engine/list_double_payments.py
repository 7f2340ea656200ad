"""B-1: list the reservations paid more than once, for a person to refund."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from concertops.contract.mapped_sql import named
from concertops.engine.action_api import Context, Outcome
from concertops.model.findings import Step


@dataclass
class ListDoublePayments:
    """B-1: reservations paid more than once (users paying again after a 500), for refund by a person.
    concertops never refunds: it lists, and the audit row keeps the list."""

    step: Step

    def _rows(self, ctx: Context) -> list[sa.Row[Any]]:
        limit = self.step.config.max_rows
        payment = named(ctx.shape, "payment", "reservation", step=self.step.id)
        with ctx.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(
                        payment["reservation"].label("reservation_id"),
                        sa.func.count().label("payments"),
                        sa.func.group_concat(payment["key"]).label("payment_ids"),
                    )
                    .group_by(payment["reservation"])
                    .having(sa.func.count() > 1)
                    .order_by(payment["reservation"])
                    .limit(limit)
                ).all()
            )

    def prepare(self, ctx: Context) -> str:
        return "list reservations paid more than once, for refund (never refunded here)"

    def run(self, ctx: Context) -> Outcome:
        rows = [(r.reservation_id, str(r.payment_ids)) for r in self._rows(ctx)]
        for reservation, payments in rows:
            ctx.note(f"refund candidate: reservation {reservation}, payments {payments[:80]}")
        listed, detail = decide(rows)
        return Outcome("ok", listed, detail)


def decide(rows: list[tuple[Any, str]]) -> tuple[int, str]:
    """The list a person refunds from, as the step's result (pure): never more than 50 in one line."""
    if not rows:
        return 0, "no reservation paid twice"
    listing = "; ".join(f"{reservation}: {payments}" for reservation, payments in rows[:50])
    return len(rows), f"{len(rows)} reservation(s) paid more than once, refund by hand: {listing}"
