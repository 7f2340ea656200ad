"""Force-expire's decision and batch sizing are pure: targets and limits in, the plan out, no database."""

from __future__ import annotations

from datetime import datetime

from concertops.engine.force_expire import Targets, decide, first_size, next_size
from concertops.runbooks.catalogue import ForceExpireParams

LIMITS = ForceExpireParams(batch=5000, batch_ms=50, max_rows=1000, sleep=0.0)
AT = datetime(2026, 12, 3, 3, 0, 0)


def test_nothing_overdue_plans_nothing() -> None:
    decision = decide(Targets(AT, 0, "the service's clock at UTC"), LIMITS, ())
    assert decision.todo == 0 and "no overdue HELD reservation" in decision.line


def test_max_rows_caps_the_holds_and_says_so() -> None:
    decision = decide(Targets(AT, 4000, "the service's clock at UTC"), LIMITS, ("frees their seats",))
    assert (decision.todo, decision.capped) == (1000, True)
    assert "expire 1000 of 4000 overdue holds" in decision.line
    assert "capped by --max-rows 1000" in decision.line and "frees their seats" in decision.line


def test_a_service_without_seat_rows_is_told_so() -> None:
    decision = decide(Targets(AT, 40, "x"), LIMITS, ())
    assert decision.todo == 40 and not decision.capped
    assert "no seat row to free on this service" in decision.line


def test_batches_grow_toward_the_target_time_but_never_past_the_limit() -> None:
    assert next_size(500, 0.010, LIMITS) == 1000  # 10 ms of 50: at most doubles
    assert next_size(4000, 0.010, LIMITS) == 5000  # never above the step's batch
    assert next_size(1000, 0.040, LIMITS) == 1250  # close to the target: a step toward it


def test_batches_shrink_when_slow_but_stay_at_least_one() -> None:
    assert next_size(1000, 0.200, LIMITS) == 500  # at most halves
    assert next_size(1, 5.0, LIMITS) == 1


def test_the_first_batch_is_small_unless_the_size_is_fixed() -> None:
    assert first_size(LIMITS) == 500
    assert first_size(ForceExpireParams(batch=7, batch_ms=50, max_rows=1000, sleep=0.0)) == 7
    assert first_size(ForceExpireParams(batch=5000, batch_ms=0, max_rows=1000, sleep=0.0)) == 5000


def test_a_zero_target_keeps_every_batch_at_its_size() -> None:
    fixed = ForceExpireParams(batch=500, batch_ms=0, max_rows=1000, sleep=0.0)
    assert next_size(500, 0.001, fixed) == 500
