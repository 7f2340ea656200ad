"""What a service has to act through, read from its service map's own fields.

A runbook step runs the same implementation on every service. Its extras come from here: a seat status
to free, a sold-out mark to lift, an outbox to write expiry events to and to re-publish through, a
dead-letter topic to replay. What a service lacks is said with the map field that decides it, so a map
that differs from the built-in ones in any way is judged by what it says, never by its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from concertops.contract.service_map import ServiceMap


@dataclass(frozen=True)
class Capabilities:
    runtime_settings: bool  # a settings table the service re-reads (else a deploy: hand-off steps)
    outbox: bool  # an outbox table the service's relay publishes from
    seat_status: (
        bool  # seat rows with a status and the reservation holding them (else a hold's status is all)
    )
    sold_out_mark: bool  # a schedule flag the service refuses a sold-out schedule by
    dlq: bool  # a dead-letter topic for expiry events
    notification_record: bool  # a row per notification sent (who was told of which payment)
    one_payment_per_reservation: bool  # payment.reservation has a unique key of its own
    queue_store: str  # sql | redis

    def lacks(self, shape: ServiceMap, need: str) -> str:
        """Why the service cannot take a step that needs ``need``: the map field that says so."""
        return _REASONS[need].format(name=shape.name)


_REASONS = {
    "sold_out_mark": "its map has no tables.schedule with a sold_out column (a schedule there is sold out "
    "when every seat is named by a reservation in seat_taken_by)",
    "dlq": "its map names no dead-letter topic (kafka.topics.expiration_dlq)",
    "double_charge": "a payment cannot be charged twice there: tables.payment.unique names reservation",
    "flat_without_outbox": "without an outbox (acts.outbox) re-publishing writes the service's own envelope, "
    "and kafka.envelope flat has none of its own to write",
    "payment_events": "its map lacks what re-publishing reads: tables.payment (reservation, user, amount, "
    "created_at) and kafka.topics.payment_completed",
}


def of(shape: ServiceMap) -> Capabilities:
    seat = shape.table("seat")
    reservation = shape.table("reservation")
    schedule = shape.table("schedule")
    payment = shape.table("payment")
    seat_status = bool(
        seat
        and seat.column("status")
        and seat.column("reservation")
        and reservation
        and reservation.column("seat")
    )
    return Capabilities(
        runtime_settings=shape.acts.runtime_settings,
        outbox=shape.acts.outbox and shape.table("outbox") is not None,
        seat_status=seat_status,
        sold_out_mark=bool(
            seat_status and schedule and schedule.column("sold_out") and seat and seat.column("schedule")
        ),
        dlq=shape.topic("expiration_dlq") is not None,
        notification_record=shape.table("notification") is not None,
        one_payment_per_reservation=bool(payment and "reservation" in payment.unique),
        queue_store=shape.queue.store,
    )
