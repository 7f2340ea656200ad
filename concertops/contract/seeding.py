"""Concerts, schedules and seats to book: ``concertops backend seed``, and the schedules a simulated incident
books (the organiser's side of the contract, written with the contract's tables)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from concertops.contract.schema import concert, schedule, seat


def _new_id(result: sa.CursorResult) -> int:
    key = result.inserted_primary_key
    assert key is not None, "INSERT without a generated primary key"
    return int(key[0])


@dataclass(frozen=True)
class Seeded:
    concert_ids: list[int]
    schedule_ids: list[int]
    seats: int


def seed(
    engine: sa.Engine, concerts: int = 1, schedules: int = 1, seats: int = 50, price: int = 100_000
) -> Seeded:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    concert_ids: list[int] = []
    schedule_ids: list[int] = []
    with engine.begin() as conn:
        for c in range(concerts):
            cid = _new_id(conn.execute(concert.insert().values(title=f"Concert {c + 1}", created_at=now)))
            concert_ids.append(int(cid))
            for s in range(schedules):
                sid = _new_id(
                    conn.execute(
                        schedule.insert().values(
                            concert_id=cid, starts_at=now + timedelta(days=30 + s), sold_out=False
                        )
                    )
                )
                schedule_ids.append(int(sid))
                conn.execute(
                    seat.insert(),
                    [
                        {"schedule_id": sid, "seat_no": n, "price": price, "status": "AVAILABLE"}
                        for n in range(1, seats + 1)
                    ],
                )
    return Seeded(concert_ids, schedule_ids, len(schedule_ids) * seats)
