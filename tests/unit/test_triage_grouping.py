"""Grouping firing alerts into what to run: worst first, pending alerts ignored, exit status by severity."""

from __future__ import annotations

from concertops.engine.triage import Alert, overall, triage
from concertops.model.status import Status


def alert(name: str, severity: str, runbook: str | None, state: str = "firing") -> Alert:
    labels = {
        "alertname": name,
        "severity": severity,
        "priority": {"page": "P0", "warn": "P1"}.get(severity, "P2"),
    }
    if runbook:
        labels["runbook"] = runbook
    return Alert.from_api(
        {"labels": labels, "annotations": {"summary": name}, "state": state, "activeAt": "t"}
    )


def test_the_most_severe_runbook_comes_first() -> None:
    leads = triage(
        [
            alert("QueueActivationLate", "warn", "A-3"),
            alert("KafkaProducerSendFailures", "page", "B-1"),
            alert("PaymentSuccessRateLow", "info", "B-1"),
            alert("CacheHitRateLow", "info", None),
        ]
    )
    assert [(lead.runbook, lead.severity) for lead in leads] == [
        ("B-1", "page"),
        ("A-3", "warn"),
        (None, "info"),
    ]
    assert [a.name for a in leads[0].alerts] == ["KafkaProducerSendFailures", "PaymentSuccessRateLow"]
    assert leads[0].command == "concertops b1"
    assert overall(leads) is Status.CRITICAL


def test_pending_alerts_do_not_count() -> None:
    leads = triage([alert("DBPoolUsageHigh", "warn", "A-1", state="pending")])
    assert leads == [] and overall(leads) is Status.OK


def test_warnings_and_business_alerts_exit_1() -> None:
    leads = triage([alert("SellOutConflictShare", "info", "A-2")])
    assert overall(leads) is Status.WARNING
