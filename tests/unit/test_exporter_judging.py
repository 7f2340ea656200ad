"""The exporter's judging of its last results (pure: no source is opened): a fresh measurement is judged
by the page's thresholds; a stale one, or one whose source failed, is UNKNOWN with no value; a signal the
map cannot give is not applicable; metric signals are not served."""

from __future__ import annotations

import time

from concertops.config import Profile
from concertops.engine.exporter import Collector, Cycle, Exporter, _key
from concertops.model.findings import Observation
from concertops.runbooks.registry import all_runbooks


def _exporter() -> Exporter:
    return Exporter(Profile(name="t", service_map="step10"), all_runbooks(), interval_s=15, deadline_s=10)


def _serve(exporter: Exporter, runbook: str, signal: str, value: float | None, age_s: float = 0.0) -> None:
    item = next(s for s in exporter.served if s.runbook == runbook and s.signal.name == signal)
    bound = item.bound
    assert not isinstance(bound, str)
    loop = exporter.loops[item.source]
    error = None if value is not None else "connection refused"
    observed = Observation(signal, item.source, "q", value=value, error=error)
    loop.last = Cycle(
        time.time() - age_s, 0.01, {_key(bound): observed}, {_key(bound): 0.01}, up=error is None
    )


def _judged(exporter: Exporter) -> dict[tuple[str, str], tuple[int, float | None]]:
    return {(j.served.runbook, j.served.signal.name): (j.status, j.value) for j in exporter.judged()}


def test_fresh_results_are_judged_by_the_page_and_stale_or_failed_ones_are_unknown() -> None:
    exporter = _exporter()
    _serve(exporter, "B-2", "overdue_holds", 40)
    assert _judged(exporter)[("B-2", "overdue_holds")] == (2, 40)
    _serve(exporter, "B-2", "overdue_holds", 40, age_s=31)  # over two intervals old
    assert _judged(exporter)[("B-2", "overdue_holds")] == (3, None)
    _serve(exporter, "B-2", "overdue_holds", None)
    assert _judged(exporter)[("B-2", "overdue_holds")] == (3, None)


def test_what_step10_cannot_give_is_not_applicable_and_metrics_are_not_served() -> None:
    exporter = _exporter()
    judged = _judged(exporter)
    assert judged[("B-2", "dlq_depth")] == (4, None)
    assert ("A-1", "pool_usage") not in judged
    assert set(exporter.loops) == {"http", "kafka", "redis", "sql"}


def test_a_down_source_reads_down_and_serves_no_value() -> None:
    exporter = _exporter()
    _serve(exporter, "A-3", "queue_waiting", None)
    families = {f.name: f for f in Collector(exporter).collect()}
    up = {s.labels["source"]: s.value for s in families["concertops_source_up"].samples}
    assert up["redis"] == 0
    values = {(s.labels["runbook"], s.labels["signal"]) for s in families["concertops_signal_value"].samples}
    assert ("A-3", "queue_waiting") not in values
    runbooks = {s.labels["runbook"]: s.value for s in families["concertops_runbook_status"].samples}
    assert runbooks["A-3"] == 3  # no decisive signal measured: UNKNOWN, never OK
