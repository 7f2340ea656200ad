"""Each runbook's judgement from hand-made observations: status, verdict and plan."""

from __future__ import annotations

import pytest

from concertops.model.findings import Observation
from concertops.model.status import Status
from concertops.runbooks.registry import Runbook, get


def observe(rb: Runbook, **values: float) -> dict[str, Observation]:
    """Every signal healthy (0, or 1 for floors) unless given."""
    out = {}
    for s in rb.page.signals:
        value = values.get(s.name, 1.0 if s.below else 0.0)
        out[s.name] = Observation(s.name, "test", s.describe_query(), value=value)
    return out


@pytest.mark.parametrize("runbook_id", ["A-1", "A-2", "A-3", "B-1", "B-2", "B-3", "B-4"])
def test_healthy_values_are_ok_with_no_plan(runbook_id: str) -> None:
    rb = get(runbook_id)
    judged = rb.judge(observe(rb))
    assert judged.status is Status.OK and judged.plan == () and judged.verdict == "no sign of this incident"


def test_a1_lock_waiters_draining_the_pool() -> None:
    rb = get("A-1")
    judged = rb.judge(observe(rb, pool_usage=1.0, lock_errors=2.0, p95_latency=1.5))
    assert judged.status is Status.CRITICAL
    assert "lock waiters" in judged.verdict
    assert [s.id for s in judged.plan] == ["fewer-active-tokens", "fail-fast-lock", "explicit-pool"]
    assert judged.plan[0].limits == {"min": 10}


def test_a2_sell_out_is_a_business_verdict_unless_5xx_rises() -> None:
    rb = get("A-2")
    sellout = rb.judge(observe(rb, conflict_share=0.49, server_error_share=0.009))
    assert sellout.status is Status.WARNING
    assert sellout.verdict.startswith("business sell-out, not an incident")
    real = rb.judge(observe(rb, conflict_share=0.49, server_error_share=0.011))
    assert real.status is Status.CRITICAL and "real incident" in real.verdict


def test_a3_polling_without_event_activation() -> None:
    rb = get("A-3")
    judged = rb.judge(observe(rb, event_activation=0.0, oldest_waiting=12.0, waiting_tokens=250.0))
    assert judged.status is Status.WARNING and "event activation is off" in judged.verdict
    assert judged.plan[0].id == "event-activation"


def test_b1_payments_failing_on_a_broker_outage() -> None:
    rb = get("B-1")
    judged = rb.judge(observe(rb, producer_errors=0.2, payment_server_errors=1.0, unnotified_payments=3))
    assert judged.status is Status.CRITICAL and "pay again" in judged.verdict
    assert {s.id for s in judged.plan} == {"outbox-mode", "republish-missed"}


@pytest.mark.parametrize(
    ("overdue", "status"), [(0, Status.OK), (1, Status.WARNING), (10, Status.WARNING), (11, Status.CRITICAL)]
)
def test_b2_overdue_holds_boundaries(overdue: int, status: Status) -> None:
    rb = get("B-2")
    assert rb.judge(observe(rb, overdue_holds=overdue)).status is status


def test_b2_blocking_consumer_verdict_and_plan() -> None:
    rb = get("B-2")
    judged = rb.judge(observe(rb, overdue_holds=3, blocking_sleeps=1, dlq_depth=2))
    assert "blocking expiry consumer" in judged.verdict
    assert [s.id for s in judged.plan] == ["force-expire", "reschedule-mode", "sweep-fallback", "replay-dlq"]


def test_b3_max_connections_before_pool_size() -> None:
    rb = get("B-3")
    judged = rb.judge(observe(rb, connection_share=0.96, pool_timeouts=0.5))
    assert judged.status is Status.CRITICAL and "max_connections" in judged.verdict


def test_b4_disconnected_and_dropping() -> None:
    rb = get("B-4")
    judged = rb.judge(observe(rb, producer_connected=0.0, skip_policy=2.0, skipped_events=0.1))
    assert judged.status is Status.CRITICAL and "lost right now" in judged.verdict
    assert judged.plan[0].id == "buffer-when-disconnected"


def test_an_unmeasured_signal_does_not_hide_a_measured_one() -> None:
    rb = get("B-2")
    observations = observe(rb, overdue_holds=20)
    observations["expiry_lag"] = Observation("expiry_lag", "kafka", "lag", error="broker down")
    judged = rb.judge(observations)
    assert judged.status is Status.CRITICAL
    assert next(f for f in judged.findings if f.signal == "expiry_lag").status is Status.UNKNOWN


def _on_step10(rb: Runbook, **values: float) -> dict[str, Observation]:
    """The signals a service without metrics cannot give, not applicable; the rest as ``observe``."""
    from concertops.contract.binding import bind
    from concertops.contract.service_map import load

    shape = load("step10")
    out = observe(rb, **values)
    for s in rb.page.signals:
        why = bind(s, shape)
        if isinstance(why, str):
            out[s.name] = Observation(s.name, "test", s.describe_query(), not_applicable=why)
    return out


@pytest.mark.parametrize(
    ("runbook_id", "firing", "words"),
    [
        ("A-1", {"probe_p95": 2.0}, "answers slowly"),
        ("A-2", {"probe_server_errors": 0.5}, "a real incident"),
        ("A-3", {"queue_waiting": 500.0}, "activate the oldest now"),
        ("B-1", {"unpublished_payments": 20.0}, "re-publish exactly those"),
        ("B-4", {"unpublished_payments": 20.0}, "re-publish them"),
    ],
)
def test_the_verdict_on_a_service_without_metrics_names_the_cause_not_the_title(
    runbook_id: str, firing: dict[str, float], words: str
) -> None:
    rb = get(runbook_id)
    judged = rb.judge(_on_step10(rb, **firing))
    assert judged.status in (Status.WARNING, Status.CRITICAL), judged
    assert words in judged.verdict and rb.page.title not in judged.verdict, judged.verdict


def test_an_unknown_verdict_names_what_failed_and_counts_what_this_service_cannot_give() -> None:
    rb = get("A-1")
    observed = _on_step10(rb)
    observed["probe_p95"] = Observation("probe_p95", "http", "GET /", error="no backend_urls configured")
    observed["lock_waiters"] = Observation("lock_waiters", "redis", "SET", error="connection refused")
    judged = rb.judge(observed)
    assert judged.status is Status.UNKNOWN
    assert judged.verdict.startswith("could not be judged: probe_p95 not measured: no backend_urls")
    assert "lock_waiters not measured: connection refused" in judged.verdict
    assert judged.verdict.endswith("(and 3 not available on this service)"), judged.verdict


def test_a2_every_backend_down_is_an_outage_and_some_down_a_warning() -> None:
    rb = get("A-2")
    down = rb.judge(observe(rb, probe_backends_down=1.0, probe_server_errors=1.0, conflict_share=0.49))
    assert down.status is Status.CRITICAL
    assert down.verdict.startswith("service unreachable on every backend")
    some = rb.judge(observe(rb, probe_backends_down=0.5))
    assert some.status is Status.WARNING and "some backends refuse every connection" in some.verdict


def test_a2_names_a_sell_out_seen_in_the_data_where_no_metric_counts_refusals() -> None:
    rb = get("A-2")
    observations = observe(rb)
    observations["sold_out_recently"] = Observation(
        "sold_out_recently",
        "sql",
        "…",
        value=2.0,
        rows=(("sched-a", 50), ("sched-b", 50)),
        columns=("s", "n"),
    )
    judged = rb.judge(observations)
    assert judged.status is Status.WARNING  # a sell-out is business: a warning, as a 409 flood is
    assert judged.verdict.startswith(
        "sell-out: 2 schedule(s) with every seat held or confirmed (sched-a, sched-b)"
    )
    failing = rb.judge(
        {**observations, **observe(rb, probe_server_errors=0.5)}
        | {"sold_out_recently": observations["sold_out_recently"]}
    )
    assert failing.status is Status.CRITICAL and "real incident" in failing.verdict


def test_a1_names_the_seats_fought_over_where_only_redis_sees_the_lock() -> None:
    rb = get("A-1")
    observed = _on_step10(rb)
    observed["probe_p95"] = Observation("probe_p95", "http", "GET /", value=0.05)
    observed["lock_waiters"] = Observation("lock_waiters", "redis", "SET", value=180.0)
    observed["seat_locks_held"] = Observation(
        "seat_locks_held", "redis", "SCAN", value=3.0, rows=(("lock:seat:a", 4000), ("lock:seat:b", 4500))
    )
    judged = rb.judge(observed)
    assert judged.status is Status.CRITICAL
    assert judged.verdict.startswith("seat-lock contention: about 180 requests retrying the seat locks on ")
    assert "lock:seat:a, lock:seat:b" in judged.verdict
    assert [s.id for s in judged.plan][:2] == ["fewer-active-tokens", "fail-fast-lock"]


def test_b3_the_server_wide_share_alone_never_judges_the_service_pool() -> None:
    """On a service without metrics, a share of max_connections with the service's own pool unseen is
    UNKNOWN, never OK (it said OK with every endpoint down and none of the service's tables)."""
    rb = get("B-3")
    observations = _on_step10(rb, connection_share=0.07)
    for name in ("pool_held_in_transaction", "pool_in_use"):
        observations[name] = Observation(name, "sql", "q", error="no connection of the service")
    assert rb.judge(observations).status is Status.UNKNOWN


def test_b4_a_lost_topic_names_both_causes() -> None:
    rb = get("B-4")
    observations = _on_step10(rb, unpublished_payments=20)
    note = (
        "topic payment.completed does not exist on the broker: lost by the broker, or the map names the "
        "wrong topic (`concertops doctor`)"
    )
    observations["unpublished_payments"] = Observation(
        "unpublished_payments", "kafka", "q", value=20.0, note=note
    )
    judged = rb.judge(observations)
    assert judged.status is Status.CRITICAL
    assert judged.verdict.startswith("20 SUCCESS payments have no event: payment.completed does not exist")
    assert "--create-topic" in judged.verdict


def test_b3_more_of_the_pool_in_use_than_its_size_names_a_stale_constant() -> None:
    rb = get("B-3")
    judged = rb.judge(_on_step10(rb, pool_in_use=1.4))
    assert judged.status is Status.CRITICAL and "the constant is stale" in judged.verdict
