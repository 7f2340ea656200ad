"""The HTTP probe's accounting on an injected clock: what counts as a sample, a failure, or slowness still
being measured when the check's deadline comes."""

from __future__ import annotations

import pytest

from concertops.sources.http_probe import Tally


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_samples_and_5xx_are_failures() -> None:
    clock = _Clock()
    tally = Tally(3.0, clock)
    for took, status in ((0.2, 200), (0.5, 503), (0.1, 200)):
        tally.sent()
        clock.now += took
        tally.answered(status, "http://a")
    taken = tally.samples()
    assert taken is not None
    assert sorted(taken.seconds) == pytest.approx([0.1, 0.2, 0.5]) and taken.failed == 1
    assert taken.error_share == 1 / 3 and tally.first_error == "http://a answered 503"


def test_a_request_waiting_at_the_deadline_is_measured_as_slow_not_lost() -> None:
    """The sampling thread is still waiting when the check must answer: the wait so far is the sample."""
    clock = _Clock()
    tally = Tally(3.0, clock)
    assert tally.samples() is None  # nothing sent: nothing measured
    tally.sent()
    clock.now += 2.5
    taken = tally.samples()
    assert taken is not None and taken.seconds == pytest.approx((2.5,)) and taken.failed == 0


def test_a_request_waiting_past_the_services_timeout_has_failed() -> None:
    clock = _Clock()
    tally = Tally(3.0, clock)
    tally.sent()
    clock.now += 0.3
    tally.answered(200, "http://a")
    tally.sent()
    clock.now += 3.5
    taken = tally.samples()
    assert taken is not None and taken.failed == 1 and max(taken.seconds) == 3.0


def test_a_request_still_waiting_beside_full_answers_adds_nothing_until_it_ends() -> None:
    clock = _Clock()
    tally = Tally(3.0, clock)
    tally.sent()
    clock.now += 0.4
    tally.answered(200, "http://a")
    tally.sent()
    clock.now += 1.0
    taken = tally.samples()
    assert taken is not None and taken.seconds == pytest.approx((0.4,))


def test_cut_short_by_our_deadline_counts_only_when_nothing_else_was_measured() -> None:
    clock = _Clock()
    alone = Tally(3.0, clock)
    alone.sent()
    alone.cut_short(0.7)
    assert (taken := alone.samples()) is not None and taken.seconds == (0.7,) and taken.failed == 0
    beside = Tally(3.0, clock)
    beside.sent()
    clock.now += 0.2
    beside.answered(200, "http://a")
    beside.sent()
    beside.cut_short(0.7)
    assert (taken := beside.samples()) is not None and taken.seconds == pytest.approx((0.2,))


def test_refused_and_timed_out_requests() -> None:
    clock = _Clock()
    tally = Tally(3.0, clock)
    tally.sent()
    tally.refused("http://b: connection refused")
    tally.sent()
    clock.now += 3.0
    tally.failed("http://a: timed out", took=3.0)
    taken = tally.samples()
    assert taken is not None and taken.unreachable == 1 and taken.failed == 1 and taken.error_share == 1.0
    assert tally.first_error == "http://b: connection refused"


def test_only_a_request_that_ended_makes_a_complete_measurement() -> None:
    clock = _Clock()
    tally = Tally(3.0, clock)
    tally.sent()
    clock.now += 1.0
    waiting = tally.samples()
    assert waiting is not None and not waiting.ended  # a lower bound: judged only beyond a ceiling
    tally.cut_short(1.5)
    cut = tally.samples()
    assert cut is not None and not cut.ended and cut.seconds == (1.5,)
    answered = Tally(3.0, clock)
    answered.sent()
    clock.now += 0.3
    answered.answered(200, "http://a")
    assert (taken := answered.samples()) is not None and taken.ended


def test_a_backend_refusing_every_connection_is_down_and_not_in_the_error_share() -> None:
    clock = _Clock()
    tally = Tally(3.0, clock)
    for _ in range(3):
        tally.sent("http://a")
        clock.now += 0.1
        tally.answered(200, "http://a")
        tally.sent("http://b")
        tally.refused("http://b: connection refused", "http://b")
    taken = tally.samples()
    assert taken is not None and taken.backends == 2 and taken.down == 1
    assert taken.backends_down == 0.5 and taken.error_share == 0.0


def test_a_backend_that_answered_once_is_up_and_its_refusals_are_errors() -> None:
    tally = Tally(3.0, _Clock())
    tally.sent("http://a")
    tally.answered(200, "http://a")
    tally.sent("http://a")
    tally.refused("http://a: connection refused", "http://a")
    taken = tally.samples()
    assert taken is not None and taken.down == 0 and taken.error_share == 0.5


def test_every_backend_refusing_is_a_measurement_of_an_outage() -> None:
    tally = Tally(3.0, _Clock())
    for backend in ("http://a", "http://b"):
        tally.sent(backend)
        tally.refused(f"{backend}: connection refused", backend)
    taken = tally.samples()
    assert taken is not None and taken.seconds == () and taken.backends_down == 1.0
    assert taken.error_share == 1.0


def test_names_that_do_not_resolve_measure_nothing() -> None:
    """Perhaps our configuration, not the service: UNKNOWN rather than down."""
    tally = Tally(3.0, _Clock())
    tally.sent("http://a")
    tally.refused("http://a: name or service not known", "http://a", down=False)
    assert tally.samples() is None
