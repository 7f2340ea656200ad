"""Judging an observation against thresholds, at and around every boundary."""

from __future__ import annotations

import pytest

from concertops.model.evaluate import format_value, judge
from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.model.status import Status, not_ok_past_a_map_gap, report_status, runbook_status

CEILING = Signal("pool_usage", "DB pool in use", "gauge", warning=0.8, critical=0.95, unit="ratio")
FLOOR = Signal("connected", "Producers connected", "gauge", critical=1, below=True)
ANY = Signal("errors", "Producer errors", "rate", critical=0)


def seen(signal: Signal, value: float | None = None, error: str | None = None) -> Observation:
    return Observation(signal.name, "test", "q", value=value, error=error)


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (0.0, Status.OK),
        (0.8, Status.OK),
        (0.8001, Status.WARNING),
        (0.95, Status.WARNING),
        (0.951, Status.CRITICAL),
    ],
)
def test_ceiling_thresholds_are_strict(value: float, status: Status) -> None:
    assert judge(CEILING, seen(CEILING, value)).status is status


@pytest.mark.parametrize(
    ("value", "status"), [(0.0, Status.CRITICAL), (0.99, Status.CRITICAL), (1.0, Status.OK)]
)
def test_floor_thresholds(value: float, status: Status) -> None:
    assert judge(FLOOR, seen(FLOOR, value)).status is status


def test_any_occurrence_is_critical_when_the_threshold_is_zero() -> None:
    assert judge(ANY, seen(ANY, 0.0)).status is Status.OK
    assert judge(ANY, seen(ANY, 0.001)).status is Status.CRITICAL


def test_the_finding_carries_its_evidence() -> None:
    finding = judge(CEILING, Observation("pool_usage", "prometheus", "sum(x)/sum(y)", value=0.97))
    assert (finding.value, finding.threshold, finding.source, finding.query) == (
        0.97,
        0.95,
        "prometheus",
        "sum(x)/sum(y)",
    )
    assert finding.message == "97.0% is above 95.0%"


def test_an_error_is_unknown_and_no_traffic_is_ok() -> None:
    assert judge(CEILING, seen(CEILING, error="connection refused")).status is Status.UNKNOWN
    idle = judge(CEILING, seen(CEILING, None))
    assert idle.status is Status.OK and "no traffic" in idle.message


OK, WARN, CRIT, UNKNOWN, NA = (
    Status.OK,
    Status.WARNING,
    Status.CRITICAL,
    Status.UNKNOWN,
    Status.NOT_APPLICABLE,
)


@pytest.mark.parametrize(
    ("findings", "status"),
    [
        ([(OK, True), (UNKNOWN, False)], OK),
        ([(OK, True), (UNKNOWN, True)], OK),  # one decisive signal measured is enough to judge
        ([(OK, True), (NA, True)], OK),  # a signal this service cannot have is no blindness
        ([(UNKNOWN, True), (OK, False)], UNKNOWN),  # blind on what decides: never OK
        ([(UNKNOWN, True), (CRIT, False)], UNKNOWN),
        ([(NA, True), (OK, False)], UNKNOWN),  # not applicable is no evidence of health
        ([(NA, True), (WARN, True)], WARN),
        ([(WARN, True), (CRIT, False), (UNKNOWN, False)], CRIT),
        ([], UNKNOWN),
    ],
)
def test_a_runbook_is_judged_by_its_decisive_signals(findings: list, status: Status) -> None:
    assert runbook_status(findings) is status


@pytest.mark.parametrize(
    ("runbooks", "findings", "status"),
    [
        ([OK, OK], [OK, OK], OK),
        ([OK, WARN], [OK, WARN], WARN),
        ([OK, UNKNOWN], [OK, UNKNOWN], UNKNOWN),  # could not judge one: not OK, not WARNING
        ([WARN, UNKNOWN], [WARN, UNKNOWN], UNKNOWN),
        ([CRIT, UNKNOWN], [CRIT, UNKNOWN], CRIT),  # a measured critical outranks the blind spot
        ([UNKNOWN], [CRIT, UNKNOWN], CRIT),  # critical measured in a runbook that could not be judged
        ([], [], UNKNOWN),
    ],
)
def test_a_check_is_critical_then_unknown_then_the_worst(
    runbooks: list, findings: list, status: Status
) -> None:
    assert report_status(runbooks, findings) is status


def test_not_applicable_is_its_own_state() -> None:
    finding = judge(CEILING, Observation("pool_usage", "sql", "q", not_applicable="MySQL only"))
    assert finding.status is Status.NOT_APPLICABLE and finding.status.label == "N/A"
    assert "not applicable" in finding.message


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.5, "ratio", "50.0%"),
        (0.25, "s", "250 ms"),
        (2.5, "s", "2.50 s"),
        (3.0, "", "3"),
        (0.125, "/s", "0.12/s"),
        (1 / 300, "/s", "0.0033/s"),
        (0.0, "/s", "0.00/s"),
    ],
)
def test_values_read_well(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.5, Status.UNKNOWN), (0.9, Status.WARNING), (2.0, Status.CRITICAL)],
)
def test_a_lower_bound_judges_only_beyond_a_ceiling(value: float, status: Status) -> None:
    """A request still waiting at the deadline: slower than the threshold is certain, faster is not."""
    found = judge(CEILING, Observation(CEILING.name, "http", "q", value=value, at_least=True))
    assert found.status is status
    assert "at least" in found.message
    floor = judge(FLOOR, Observation(FLOOR.name, "http", "q", value=0.0, at_least=True))
    assert floor.status is Status.UNKNOWN  # a lower bound never shows a value under a floor


@pytest.mark.parametrize(
    ("findings", "status"),
    [
        ([(OK, True, False), (UNKNOWN, True, True)], UNKNOWN),  # a table the map names is not there
        ([(OK, True, False), (UNKNOWN, True, False)], OK),  # a source down: the measured one judges
        ([(OK, True, False), (UNKNOWN, False, True)], OK),  # a gap in a signal that does not decide
        ([(WARN, True, False), (UNKNOWN, True, True)], WARN),  # what fires is said
    ],
)
def test_a_decisive_signal_the_map_cannot_find_keeps_a_runbook_from_ok(
    findings: list, status: Status
) -> None:
    judged = runbook_status((s, d) for s, d, _gap in findings)
    assert not_ok_past_a_map_gap(judged, findings) is status
