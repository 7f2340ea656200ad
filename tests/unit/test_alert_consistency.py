"""alerts/ and runbooks/ are one system: an alert's runbook exists, its threshold is the runbook signal's,
every runbook has an alert, and the manual's section-5 checklist is covered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alert_rules import load_rules

from concertops.runbooks.pages import RUNBOOK_IDS, load

ROOT = Path(__file__).parents[2]
RULES = load_rules()
ALERTS = {rule["alert"]: rule for rule in RULES}
_COMPARISON = re.compile(r"(>|<)\s*(-?[0-9.]+)\s*$")
SEVERITY = {"P0": "page", "P1": "warn", "P2": "info"}


def threshold(rule: dict) -> tuple[str, float]:
    found = _COMPARISON.search(rule["expr"].strip())
    assert found, f"{rule['alert']}: the expression must end in '> N' or '< N'"
    return found[1], float(found[2])


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_is_labelled_and_annotated(name: str) -> None:
    rule = ALERTS[name]
    assert SEVERITY[rule["labels"]["priority"]] == rule["labels"]["severity"]
    for key in ("summary", "description", "runbook_url"):
        assert rule["annotations"].get(key), f"{name}: annotation {key} missing"
    assert (ROOT / rule["annotations"]["runbook_url"]).is_file(), f"{name}: runbook_url points nowhere"


@pytest.mark.parametrize("name", sorted(n for n, r in ALERTS.items() if "runbook" in r["labels"]))
def test_an_alert_shares_its_runbook_signal_threshold(name: str) -> None:
    rule = ALERTS[name]
    runbook = rule["labels"]["runbook"]
    assert runbook in RUNBOOK_IDS, f"{name}: runbook label {runbook!r} names no runbook"
    assert rule["annotations"]["runbook_url"] == f"runbooks/{runbook}.md"
    page = load(runbook)
    signal = next((s for s in page.signals if s.name == rule["labels"].get("signal")), None)
    assert signal is not None, f"{name}: signal label names no signal of {runbook}"
    op, value = threshold(rule)
    assert op == ("<" if signal.below else ">"), (
        f"{name}: compares the other way from {runbook}.{signal.name}"
    )
    assert value in (signal.warning, signal.critical), (
        f"{name}: threshold {value} is neither {runbook}.{signal.name}'s warning ({signal.warning}) "
        f"nor its critical ({signal.critical})"
    )


@pytest.mark.parametrize("runbook", RUNBOOK_IDS)
def test_every_runbook_has_an_alert(runbook: str) -> None:
    assert any(r["labels"].get("runbook") == runbook for r in RULES), f"no alert leads to {runbook}"


@pytest.mark.parametrize(
    ("priority", "needle"),
    [
        ("P0", 'status=~"5.."'),
        ("P0", "mysql_global_status_threads_connected"),
        ("P0", "redis_up"),
        ("P0", "kafka_producer_error_total"),
        ("P1", "http_request_duration_seconds_bucket"),
        ("P1", "queue_waiting_tokens"),
        ("P1", "kafka_consumer_lag"),
        ("P1", "reservation_overdue_holds"),
        ("P2", 'status="409"'),
        ("P2", 'route="/payments", status=~"2.."'),
        ("P2", "cache_hits_total"),
    ],
)
def test_the_manual_checklist_is_covered(priority: str, needle: str) -> None:
    assert any(needle in r["expr"] and r["labels"]["priority"] == priority for r in RULES)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_ratios_divide_sums_not_series(name: str) -> None:
    """A per-series ratio of 5xx over all requests is 1 whenever any 5xx exists (the manual's bug)."""
    expr = ALERTS[name]["expr"]
    for divisor in expr.split(" / ")[1:]:  # division is written " / "; a route like "/payments" is not
        assert divisor.startswith(("sum(", "(sum(")), f"{name}: divides by {divisor[:40]!r}, not a sum"
    if " / " in expr:
        assert expr.startswith(("sum(", "histogram_quantile(")), f"{name}: divides an unsummed series"
