"""A-2's incident, caused on the reference service: sell-out 409 floods."""

from __future__ import annotations

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    kit.fresh_queue(svc, run)
    schedule = svc.new_schedule(seats=2)
    users = kit.users(3)
    svc.hold_each(users[:2], schedule)
    run.did(f"schedule {schedule} sold out: both of its 2 seats held")
    retrying = svc.active_tokens(users[2:])[0]

    def retry() -> bool:
        answers = svc.at_once(8, lambda i: svc.hold(retrying, schedule, 1 + i % 2, i).status_code)
        return set(answers) <= {409, 429} or kit.unexpected(run, "retrying a sold-out schedule", answers)

    run.keep_going("a user retrying the sold-out schedule (8 at a time)", retry)


RECIPE = kit.Recipe(
    "A-2",
    "sell-out 409 floods",
    "users keep retrying a schedule that is sold out",
    cause,
    ("conflict_share", "conflict_rate"),
)
