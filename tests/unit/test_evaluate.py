"""Judging an observation against thresholds, at and around every boundary."""

from __future__ import annotations

import pytest

from concertops.model.evaluate import format_value, judge
from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.model.status import Status, overall

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


def test_overall_is_the_worst_measured_and_unknown_only_when_nothing_was() -> None:
    assert overall([Status.OK, Status.UNKNOWN]) is Status.OK
    assert overall([Status.WARNING, Status.UNKNOWN, Status.CRITICAL]) is Status.CRITICAL
    assert overall([Status.UNKNOWN, Status.UNKNOWN]) is Status.UNKNOWN
    assert overall([]) is Status.UNKNOWN


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
