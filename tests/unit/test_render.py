"""Machine formats: the Nagios line, textfile lines, the JSON schema, atomic writes; histogram quantiles."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema

from concertops.cli.render import as_text, nagios, prom, sparkline, write_atomically
from concertops.engine.report import Report, RunbookResult
from concertops.model.findings import Finding, Step
from concertops.model.status import Status
from concertops.runbooks.catalogue import ForceExpireParams
from concertops.sources.scrape import histogram_quantile

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "check-schema.json").read_text())


def report(mode: str = "prometheus") -> Report:
    finding = Finding(
        "overdue_holds",
        "Overdue holds",
        Status.CRITICAL,
        12.0,
        10.0,
        "sql",
        "SELECT 1",
        "12 is above 10",
        rows=((1, "2026-01-01"),),
    )
    step = Step(
        "force-expire",
        "Expire overdue holds",
        "force-expire",
        ForceExpireParams(batch=5000, batch_ms=50, max_rows=50_000, sleep=0.0),
        because=("overdue_holds",),
    )
    return Report(
        (
            RunbookResult("A-1", "a", Status.OK, "no sign of this incident", (), (), 0.1),
            RunbookResult("B-2", "b", Status.CRITICAL, "seats stay HELD", (finding,), (step,), 0.2),
        ),
        {"sql": "ok"},
        mode,
        0.25,
    )


def test_json_output_follows_the_documented_schema() -> None:
    document = json.loads(as_text(report(), "json"))
    jsonschema.validate(document, SCHEMA)
    assert document["status"] == "CRITICAL" and document["exit_code"] == 2


def test_nagios_is_one_line_with_perfdata_and_says_when_degraded() -> None:
    line = nagios(report())
    assert line.startswith("CONCERTOPS CRITICAL - B-2: seats stay HELD | 'A-1'=0;1;2;0;3 'B-2'=2;1;2;0;3")
    assert "\n" not in line
    assert nagios(report("degraded: direct scrape (x)")).startswith(
        "CONCERTOPS CRITICAL (degraded: direct scrape (x))"
    )


def test_nagios_names_the_sources_that_did_not_answer() -> None:
    broken = Report(
        report().runbooks[:1], {"sql": "ok", "kafka": "127.0.0.1:9: connection refused"}, "prometheus", 0.1
    )
    assert nagios(broken).startswith(
        "CONCERTOPS OK - all runbooks OK; not measured: kafka: 127.0.0.1:9: connection"
    )


def test_prom_textfile_lines() -> None:
    assert 'concertops_runbook_status{runbook="B-2"} 2\n' in prom(report())


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "concertops.prom"
    write_atomically(target, "x 1\n")
    write_atomically(target, "x 2\n")
    assert target.read_text() == "x 2\n" and [p.name for p in target.parent.iterdir()] == ["concertops.prom"]


def test_histogram_quantile_matches_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == 0.1
    assert abs(histogram_quantile(0.95, buckets) - 0.75) < 1e-9
    assert histogram_quantile(0.99, [(0.1, 0.0), (float("inf"), 10.0)]) == 0.1  # rank in +Inf
    assert histogram_quantile(0.95, [(0.1, 0.0), (float("inf"), 0.0)]) is None  # no traffic


def test_sparkline_spans_the_range() -> None:
    assert sparkline((0.0, 5.0, 10.0)) == "▁▄█"
    assert sparkline(()) == ""


def _judged_report() -> Report:
    from concertops.model.evaluate import judge
    from concertops.model.findings import Observation
    from concertops.model.signals import Signal

    overdue = Signal("overdue_holds", "Overdue holds", "sql", warning=0, critical=10, decisive=True)
    connected = Signal("producer_connected", "Producers connected", "gauge", critical=1, below=True)
    processlist = Signal("idle", "Idle connections", "sql", warning=50)
    seen = Observation(
        "overdue_holds", "sql", "q", value=40.0, rows=((7, "2026-01-01 00:00:00"),), columns=("id", "due")
    )
    findings = (
        judge(overdue, seen),
        judge(connected, Observation("producer_connected", "prometheus", "q", value=0.0)),
        judge(processlist, Observation("idle", "sql", "q", not_applicable="MySQL only")),
    )
    return Report(
        (RunbookResult("B-2", "b", Status.CRITICAL, "held", findings, (), 0.1),),
        {"sql": "ok"},
        "prometheus",
        0.2,
    )


def test_nagios_perfdata_carries_every_measured_signal_with_its_ranges() -> None:
    line = nagios(_judged_report())
    assert "'B-2.overdue_holds'=40;0;10" in line
    assert "'B-2.producer_connected'=0;;1:" in line  # a floor alerts below 1
    assert "'B-2.idle'" not in line  # not applicable: nothing measured


def test_prom_textfile_has_each_signal_value_and_status() -> None:
    text = prom(_judged_report())
    assert 'concertops_signal_value{runbook="B-2",signal="overdue_holds"} 40\n' in text
    assert 'concertops_signal_status{runbook="B-2",signal="overdue_holds"} 2\n' in text
    assert 'concertops_signal_status{runbook="B-2",signal="idle"} 4\n' in text
    assert 'concertops_signal_value{runbook="B-2",signal="idle"}' not in text


def test_json_evidence_rows_carry_their_column_names_and_not_applicable_is_its_own_state() -> None:
    document = json.loads(as_text(_judged_report(), "json"))
    jsonschema.validate(document, SCHEMA)
    overdue, _connected, idle = document["runbooks"][0]["findings"]
    assert overdue["columns"] == ["id", "due"] and overdue["rows"] == [[7, "2026-01-01 00:00:00"]]
    assert (overdue["warning"], overdue["critical"], overdue["decisive"]) == (0, 10, True)
    assert idle["status"] == "NOT_APPLICABLE"


def test_the_short_table_counts_what_it_leaves_out(monkeypatch: Any) -> None:
    """Without --all: the firing rows, then one line naming the OK values and counting the not-applicable."""
    from rich.console import Console

    from concertops.cli import console, render

    def printed(show_all: bool) -> str:
        captured = Console(width=200, record=True, file=io.StringIO())
        monkeypatch.setattr(console, "out", lambda: captured)
        render.table(_judged_report(), show_all)
        return captured.export_text()

    short = printed(False)
    assert "Overdue holds" in short and "Producers connected" in short
    assert "Idle connections" not in short
    assert "1 not available on this service (--all lists them)" in short
    full = printed(True)
    assert "Idle connections" in full and "MySQL only" in full and "--all lists them" not in full
