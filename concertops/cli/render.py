"""Render a check report: a rich table for people, JSON, a Nagios status line, or node_exporter textfile
lines. Only this module and ``console`` know about rich."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from concertops.engine.report import Report
from concertops.model.findings import Finding
from concertops.model.status import Status

COLOURS = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "magenta",
    Status.NOT_APPLICABLE: "dim",
}
_BARS = "▁▂▃▄▅▆▇█"


def as_text(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.as_json(), indent=2, default=str) + "\n"
    if fmt == "nagios":
        return nagios(report) + "\n"
    if fmt == "prom":
        return prom(report)
    raise ValueError(fmt)


def nagios(report: Report) -> str:
    """``CONCERTOPS CRITICAL - B-2: … | 'A-1'=0;1;2;0;3 … 'B-2.overdue_holds'=40;0;10 …`` — one line; the
    perfdata holds each runbook's status, then every measured signal with its warning and critical ranges."""
    firing = [r for r in report.runbooks if r.status is not Status.OK]
    summary = "; ".join(f"{r.id}: {r.verdict}" for r in firing) or "all runbooks OK"
    broken = [f"{source}: {state}" for source, state in report.sources.items() if state != "ok"]
    if broken:
        # An OK built on the sources that answered must not read as a clean bill of health.
        summary += "; not measured: " + "; ".join(broken)
    perfdata = " ".join(
        [f"'{r.id}'={int(r.status)};1;2;0;3" for r in report.runbooks]
        + [_perfdata(r.id, f) for r in report.runbooks for f in r.findings if f.value is not None]
    )
    degraded = f" ({report.mode})" if report.mode.startswith("degraded") else ""
    perfdata += f" 'duration'={report.duration_s:.3f}s"
    return f"CONCERTOPS {report.status.name}{degraded} - {summary} | {perfdata}"


def _perfdata(runbook: str, finding: Finding) -> str:
    """``'B-2.overdue_holds'=40;0;10``: Nagios ranges, ``t`` alerting above t and ``t:`` below it."""

    def limit(threshold: float | None) -> str:
        if threshold is None:
            return ""
        return f"{threshold:g}:" if finding.below else f"{threshold:g}"

    unit = "s" if finding.unit == "s" else ""
    value = f"{finding.value:.6g}"
    return f"'{runbook}.{finding.signal}'={value}{unit};{limit(finding.warning)};{limit(finding.critical)}"


def prom(report: Report) -> str:
    signals = [(r.id, f) for r in report.runbooks for f in r.findings]
    lines = [
        "# HELP concertops_runbook_status Runbook status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        "# TYPE concertops_runbook_status gauge",
        *(f'concertops_runbook_status{{runbook="{r.id}"}} {int(r.status)}' for r in report.runbooks),
        "# HELP concertops_signal_value The value a runbook signal measured (absent when not measured).",
        "# TYPE concertops_signal_value gauge",
        *(
            f'concertops_signal_value{{runbook="{rid}",signal="{f.signal}"}} {f.value:.6g}'
            for rid, f in signals
            if f.value is not None
        ),
        "# HELP concertops_signal_status Signal status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, "
        "4 not applicable.",
        "# TYPE concertops_signal_status gauge",
        *(
            f'concertops_signal_status{{runbook="{rid}",signal="{f.signal}"}} {int(f.status)}'
            for rid, f in signals
        ),
        "# HELP concertops_check_duration_seconds How long the check took.",
        "# TYPE concertops_check_duration_seconds gauge",
        f"concertops_check_duration_seconds {report.duration_s:.3f}",
    ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Temp file in the same folder, then rename: node_exporter's textfile collector never reads half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def table(report: Report, show_ok_findings: bool) -> None:
    from rich.padding import Padding
    from rich.table import Table

    from concertops.cli import console

    out = console.out()
    out.print(f"[bold]concertops check[/] — {report.mode}, {report.duration_s:.2f} s")
    for source, state in report.sources.items():
        if state != "ok":
            out.print(f"  [magenta]{source}[/]: {state}")
    for result in report.runbooks:
        colour = COLOURS[result.status]
        out.print()
        out.print(
            f"[{colour}]{result.status.label:<8}[/] [bold]{result.id}[/] {result.title} — {result.verdict}"
        )
        grid = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
        for column in ("status", "signal", "value", "trend", "source"):
            grid.add_column(column, overflow="fold")
        hidden = {Status.OK, Status.NOT_APPLICABLE} if not show_ok_findings else set()
        for finding in result.findings:
            if finding.status in hidden:
                continue
            grid.add_row(
                f"[{COLOURS[finding.status]}]{finding.status.label}[/]",
                finding.title,
                _value(finding),
                sparkline(finding.history),
                finding.source,
            )
        if grid.row_count:
            out.print(grid)
        if hidden and (left_out := left_out_line(result.findings)):
            out.print(f"    {left_out} (--all lists them)", style="dim", markup=False)
        for finding in result.findings:
            if finding.rows:
                out.print(f"    [dim]{finding.title}, first rows:[/]")
                evidence = Table(box=None, padding=(0, 2), pad_edge=False, show_header=bool(finding.columns))
                for column in finding.columns or [""] * len(finding.rows[0]):
                    evidence.add_column(column, overflow="fold")
                for row in finding.rows[:5]:
                    evidence.add_row(*(str(v) for v in row))
                out.print(Padding(evidence, (0, 0, 0, 6)))
        for n, step in enumerate(result.plan, 1):
            limits = ", ".join(f"{k}={v}" for k, v in step.limits.items())
            detail = f"[bold]{step.action}[/]" + (f", {limits}" if limits else "")
            out.print(f"    [cyan]plan {n}.[/] {step.title} ({detail})")


def left_out_line(findings: tuple[Finding, ...]) -> str:
    """What the short table leaves out, so an OK reads as measured and the N/A rows are not noise."""
    ok = [f for f in findings if f.status is Status.OK]
    absent = sum(f.status is Status.NOT_APPLICABLE for f in findings)
    parts = []
    if ok:
        parts.append("OK: " + ", ".join(f"{f.signal} {_value(f)}" for f in ok))
    if absent:
        parts.append(f"{absent} not available on this service")
    return "; ".join(parts)


def _value(finding: Finding) -> str:
    if finding.status in (Status.UNKNOWN, Status.NOT_APPLICABLE):
        return finding.message
    return finding.message if finding.value is not None else "—"


def sparkline(history: tuple[float, ...]) -> str:
    if not history:
        return ""
    low, high = min(history), max(history)
    span = (high - low) or 1.0
    return "".join(_BARS[min(int((v - low) / span * (len(_BARS) - 1)), len(_BARS) - 1)] for v in history)
