"""A-1's incident, caused on the reference service: lock contention drains the DB pool."""

from __future__ import annotations

import itertools

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    kit.fresh_queue(svc, run)
    svc.settings((*kit.LOCKS, "db_pool_size"), db_query_delay_ms=400, max_active_tokens=200)
    run.did("legacy pool of 10 and seat locks (wait 3 s), 400 ms added to the seat query inside the lock")
    schedule = svc.new_schedule(seats=200)
    tokens = svc.active_tokens(kit.users(60))
    run.did(f"60 users let in at once (max_active_tokens=200) on schedule {schedule}")
    seats = itertools.count(1)

    def burst() -> bool:
        seat_no = next(seats)
        if seat_no > 200:
            return False
        answers = svc.at_once(len(tokens), lambda i: svc.hold(tokens[i], schedule, seat_no, i).status_code)
        run.say(f"all 60 on seat {seat_no} at once: {kit.mix(answers)}")
        return True

    run.keep_going("all 60 users on the same seat", burst)


RECIPE = kit.Recipe(
    "A-1",
    "lock contention drains the DB pool",
    "50+ users on the same seats while every seat query is slow",
    cause,
    ("lock_errors", "pool_timeouts"),
)
