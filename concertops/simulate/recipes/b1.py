"""B-1's incident, caused on the reference service: Kafka outage fails payments."""

from __future__ import annotations

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    # A short send timeout so each failed payment answers in 0.5 s; the producer never gives up on the
    # broker (no "disconnected" state), as the manual's direct publish keeps trying.
    kit.fresh_queue(svc, run)
    svc.settings(("publish_mode",), kafka_send_timeout_ms=500, producer_disconnect_after_s=300)
    run.did("legacy publishing: payments send payment.completed directly, inside the request")
    holds = svc.hold_each(kit.users(40), svc.new_schedule(seats=40))
    run.did("40 users hold a seat each, about to pay")
    kit.outage(svc, run)
    run.keep_going(
        "payments during the outage (each one committed, then answered 500)", kit.paying(svc, run, holds)
    )


RECIPE = kit.Recipe(
    "B-1",
    "Kafka outage fails payments",
    "the broker goes away while payments publish directly",
    cause,
    ("producer_errors", "payment_server_errors"),
)
