"""The draft map decided from given facts (pure): names matched, clocks paired, guesses marked."""

from __future__ import annotations

import msgspec
import yaml

from concertops.contract.draft_map import TO_CHECK, Column, Facts, decide, render
from concertops.contract.service_map import ServiceMap
from concertops.sources.discover import families


def _production() -> Facts:
    def when(name: str, default: str = "") -> Column:
        return Column(name, "datetime", "datetime", default)

    return Facts(
        tables={
            "reservation": [
                Column("reservationId", "varchar", "varchar(36)", primary=True),
                Column("userId", "varchar"),
                Column("seatId", "varchar"),
                Column("status", "enum", "enum('HELD','CONFIRMED','CANCELLED','EXPIRED')"),
                when("heldAt"),
                when("expiresAt"),
                when("createdAt", "current_timestamp(6)"),
            ],
            "payment": [
                Column("paymentId", "varchar", primary=True),
                Column("reservationId", "varchar"),
                Column("userId", "varchar"),
                Column("amount", "decimal"),
                Column("status", "enum"),
                when("paidAt"),
                when("createdAt", "current_timestamp(6)"),
            ],
        },
        unique={("payment", "reservationId")},
        statuses={"reservation": ["HELD", "CONFIRMED", "CANCELLED", "EXPIRED"]},
        redis_keys={"queue:waiting": ("zset", 1), "queue:active": ("zset", 1), "queue:token:*": ("hash", 40)},
        topics=["payment.completed", "reservation.expiration"],
        groups={"reservation-expiration-group": ["reservation.expiration"]},
        samples={"payment.completed": {"eventId": "evt_1", "eventType": "payment.completed", "payload": {}}},
    )


def test_a_production_shaped_service_drafts_a_map_that_loads() -> None:
    draft = decide(_production(), "mine")
    shape = msgspec.convert(yaml.safe_load(render(draft)), ServiceMap)
    reservation = shape.tables["reservation"]
    assert (reservation.key, reservation.key_type) == ("reservationId", "uuid")
    assert reservation.columns["expires_at"] == "expiresAt"
    assert reservation.clock is not None and (reservation.clock.service, reservation.clock.database) == (
        "heldAt",
        "createdAt",
    )
    assert shape.tables["payment"].unique == ["reservation"]
    assert shape.queue.store == "redis" and shape.queue.token is not None
    assert shape.queue.token.key == "queue:token:{token}"
    assert shape.kafka.envelope == "step10" and shape.kafka.groups["expiry"].topic == "expiration"
    assert shape.seat_taken_by == ["HELD", "CONFIRMED"]


def test_what_the_stores_cannot_show_is_marked_for_a_person() -> None:
    draft = decide(_production(), "mine")
    text = render(draft)
    assert f"# {TO_CHECK}: the service changes these only by a deploy" in text
    assert any(line.startswith("probes:") for line in draft.undecided)
    assert any(line.startswith("locks:") for line in draft.undecided)  # no lock held at the time


def test_a_store_that_could_not_be_read_marks_the_draft_incomplete() -> None:
    facts = _production()
    facts.redis_error, facts.redis_keys = "ConnectionError: refused", {}
    draft = decide(facts, "mine")
    assert draft.incomplete == ["redis: ConnectionError: refused"]
    assert [line for line in render(draft).splitlines() if line.startswith("# INCOMPLETE")] == [
        "# INCOMPLETE: redis: ConnectionError: refused"
    ]


def test_keys_ending_in_ids_make_families_and_named_keys_stay_themselves() -> None:
    typed = [
        ("queue:waiting", "zset"),
        ("queue:active", "zset"),
        ("queue:token:tok-001-ab", "hash"),
        ("queue:token:tok-002-cd", "hash"),
        ("lock:seat:6f1c1a3e-4a5b-4c1d-9e8f-0a1b2c3d4e5f", "string"),
        ("lock:seat:7a2d2b4f-5b6c-4d2e-8f9a-1b2c3d4e5f60", "string"),
    ]
    assert families(typed) == {
        "queue:waiting": ("zset", 1),
        "queue:active": ("zset", 1),
        "queue:token:*": ("hash", 2),
        "lock:seat:*": ("string", 2),
    }
