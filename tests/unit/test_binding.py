"""Pages' signals bound to a service map: the twin's names, production's names, or why it cannot say."""

from __future__ import annotations

from datetime import timedelta

from concertops.contract import service_map
from concertops.contract.binding import bind
from concertops.contract.zones import now_sql
from concertops.model.signals import Signal
from concertops.runbooks.pages import RUNBOOK_IDS, load

REFERENCE, STEP10 = service_map.load("reference"), service_map.load("step10")


def _signal(runbook: str, name: str) -> Signal:
    return load(runbook).signal(name)


def test_b2_overdue_holds_in_each_services_names_and_zone() -> None:
    twin = bind(_signal("B-2", "overdue_holds"), REFERENCE)
    production = bind(_signal("B-2", "overdue_holds"), STEP10)
    assert isinstance(twin, Signal) and isinstance(production, Signal)
    assert twin.query == (
        "SELECT COUNT(*) FROM reservation WHERE status = 'HELD' AND held_expires_at < {now}"
        " - INTERVAL 30 SECOND"
    )
    # "now" is the source's to fill, at the query's instant, in the zone the rows show.
    assert "expiresAt < {now} - INTERVAL 30 SECOND" in production.query
    assert (twin.zoned, production.zoned) == ("reservation", "reservation")
    assert "datetime({now}, '-30 seconds')" in twin.sqlite_query
    assert "reservationId, userId, seatId" in production.detail


def test_the_expiry_groups_are_each_services_own() -> None:
    twin, production = (bind(_signal("B-2", "expiry_lag"), shape) for shape in (REFERENCE, STEP10))
    assert isinstance(twin, Signal) and (twin.group, twin.topic) == (
        "booking-expiry",
        "reservation.expiration",
    )
    assert isinstance(production, Signal) and production.group == "reservation-expiration-group"


def test_what_production_lacks_is_not_available_with_the_reason() -> None:
    assert (
        bind(_signal("B-2", "dlq_depth"), STEP10) == "not available on step10: it has no expiration_dlq topic"
    )
    assert bind(_signal("A-2", "sold_out_schedules"), STEP10) == (
        "not available on step10: its seat table has no status column"
    )
    assert bind(_signal("B-4", "unnotified_payments"), STEP10) == (
        "not available on step10: it has no notification table"
    )
    assert (
        bind(_signal("B-3", "pool_timeouts"), STEP10)
        == "not available on step10: the service exports no metrics"
    )


# What the twin gives another way: its outbox carries every payment's event, and its metrics its latency
# and errors (its map names no HTTP probe).
NOT_ON_THE_TWIN = {
    "unpublished": "not available on reference: its outbox carries every payment's event",
    "http": "not available on reference: its service map names no availability HTTP probe",
}


def test_on_the_twin_every_signal_binds() -> None:
    for runbook in RUNBOOK_IDS:
        for signal in load(runbook).signals:
            bound = bind(signal, REFERENCE)
            if signal.kind in NOT_ON_THE_TWIN:
                assert isinstance(bound, str) and bound.startswith(NOT_ON_THE_TWIN[signal.kind]), bound
            elif signal.kind == "redis" and signal.key.startswith("{"):  # the twin's locks are in MySQL
                assert isinstance(bound, str) and bound.startswith(
                    "not available on reference: its map names no"
                )
            elif signal.without_metrics:  # the twin's metrics answer it
                assert bound == f"not available on reference: {signal.without_metrics}", bound
            elif (
                "{deploy." in signal.query or signal.above_constant
            ):  # the twin's constants are runtime settings, measured by metrics
                assert isinstance(bound, str) and bound.startswith(
                    "not available on reference: its map gives no"
                )
            else:
                assert isinstance(bound, Signal), (runbook, signal.name)


def test_on_step10_the_probes_and_the_reconciliation_bind() -> None:
    probe = bind(_signal("A-1", "probe_p95"), STEP10)
    assert isinstance(probe, Signal) and probe.path.startswith("/api/concerts/dates?") and probe.samples == 5
    unpublished = bind(_signal("B-4", "unpublished_payments"), STEP10)
    assert isinstance(unpublished, Signal) and unpublished.topic == "payment.completed"
    assert unpublished.window_s == 3600 and unpublished.settle_s == 60


def test_now_in_the_services_zone() -> None:
    hours = timedelta(hours=9)
    assert now_sql(timedelta(0), "mysql") == "UTC_TIMESTAMP()"
    assert now_sql(hours, "mysql") == "(UTC_TIMESTAMP() + INTERVAL 32400 SECOND)"
    assert now_sql(-timedelta(hours=3, minutes=30), "sqlite") == "datetime('now', '-12600 seconds')"


def test_the_queue_is_measured_where_each_service_keeps_it() -> None:
    twin = bind(_signal("A-3", "queue_oldest_waiting"), REFERENCE)
    production = bind(_signal("A-3", "queue_oldest_waiting"), STEP10)
    assert isinstance(twin, Signal) and twin.kind == "sql"
    assert twin.query == (
        "SELECT COALESCE(TIMESTAMPDIFF(SECOND, MIN(created_at), {now}), 0)"
        " FROM queue_token WHERE status = 'WAITING'"
    )
    assert isinstance(production, Signal) and production.kind == "redis"
    assert (production.key, production.measure) == ("queue:waiting", "oldest_score_age_s")
    waiting = bind(_signal("A-3", "queue_waiting"), STEP10)
    assert isinstance(waiting, Signal) and (waiting.key, waiting.measure) == ("queue:waiting", "zcard")


def test_a_count_the_schema_makes_impossible_is_not_available_not_queried() -> None:
    assert bind(_signal("B-1", "double_payments"), STEP10) == (
        "not available on step10: its payment.reservation is unique, so this cannot happen there"
    )
    assert isinstance(bind(_signal("B-1", "double_payments"), REFERENCE), Signal)


def test_a_deploy_constant_binds_as_its_number_and_a_missing_one_is_named() -> None:
    pool = _signal("B-3", "pool_held_in_transaction")
    bound = bind(pool, STEP10)
    assert isinstance(bound, Signal) and "/ 10 END FROM" in bound.query, bound
    assert bind(pool, REFERENCE) == (
        "not available on reference: its map gives no db_pool_size (deploy_constants.db_pool_size)"
    )
