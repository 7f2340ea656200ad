"""B-2's incident, caused on the reference service: lost expiry events hold seats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    from concertops.contract.schema import reservation, seat

    svc.settings(("expiry_consumer_mode", "expiry_sweep_interval_s"))
    run.did("legacy expiry: blocking consumer (commits, then sleeps), no sweep")
    schedule = svc.new_schedule(seats=40)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    users = iter(kit.users(40))
    with svc.engine.begin() as conn:
        seats = conn.execute(seat.select().where(seat.c.schedule_id == schedule)).all()
        for row in seats:
            made = conn.execute(
                reservation.insert().values(
                    user_id=next(users),
                    schedule_id=schedule,
                    seat_no=row.seat_no,
                    seat_id=row.seat_id,
                    status="HELD",
                    held_expires_at=now - timedelta(minutes=5),
                    created_at=now - timedelta(minutes=10),
                    updated_at=now - timedelta(minutes=10),
                )
            )
            conn.execute(
                seat.update()
                .where(seat.c.seat_id == row.seat_id)
                .values(status="HELD", reservation_id=made.inserted_primary_key[0])  # type: ignore[index]
            )
    run.did(
        f"{len(seats)} holds on schedule {schedule} as a consumer restart leaves them: HELD 5 minutes past "
        "their expiry, their expiry messages consumed and gone"
    )


RECIPE = kit.Recipe(
    "B-2",
    "lost expiry events hold seats",
    "expiry messages lost: holds never expire",
    cause,
    ("overdue_holds",),
)
