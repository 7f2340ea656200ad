"""B-4's incident, caused on the reference service: events dropped while disconnected."""

from __future__ import annotations

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    kit.fresh_queue(svc, run)
    svc.settings(("publish_mode", "producer_disconnected"), producer_disconnect_after_s=1)
    run.did(
        "legacy producer: direct publishing that drops events while disconnected (skip); "
        "disconnected after 1 s"
    )
    holds = svc.hold_each(kit.users(20), svc.new_schedule(seats=20))
    run.did("20 users hold a seat each, about to pay")
    kit.outage(svc, run)
    svc.wait_metric("kafka_producer_connected", lambda v: bool(v) and max(v) == 0, "producers disconnected")
    run.did("every instance's producer reports disconnected")
    run.keep_going(
        "payments while disconnected (each answered 201, its event dropped)", kit.paying(svc, run, holds)
    )


RECIPE = kit.Recipe(
    "B-4",
    "events dropped while disconnected",
    "payments succeed while their events are dropped",
    cause,
    ("skipped_events",),
)
