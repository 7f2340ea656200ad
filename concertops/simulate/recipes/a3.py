"""A-3's incident, caused on the reference service: queue activation delayed by polling."""

from __future__ import annotations

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    kit.fresh_queue(svc, run)
    svc.settings(("event_activation", "queue_activation_interval_s"), max_active_tokens=1)
    run.did("legacy queue: activation polled every 5 s, no event activation; max_active_tokens=1")
    users = kit.users(11)
    svc.active_tokens(users[:1])
    svc.issue_tokens(users[1:])
    run.did("1 user ACTIVE, 10 more WAITING behind it")


RECIPE = kit.Recipe(
    "A-3",
    "queue activation delayed by polling",
    "tokens wait for the next polling cycle",
    cause,
    ("oldest_waiting",),
)
