"""A check's result: per runbook its status, findings and plan; overall as ``model.status.report_status``.

``as_json`` is the documented, stable schema (``docs/check-schema.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from concertops.model.findings import Finding, Step
from concertops.model.status import Status, report_status

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunbookResult:
    id: str
    title: str
    status: Status
    verdict: str
    findings: tuple[Finding, ...]
    plan: tuple[Step, ...]
    duration_s: float

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.name,
            "verdict": self.verdict,
            "findings": [f.as_json() for f in self.findings],
            "plan": [s.as_json() for s in self.plan],
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class Report:
    runbooks: tuple[RunbookResult, ...]
    sources: dict[str, str]  # source → "ok" or its error, one line
    mode: str  # "prometheus" or "degraded: direct scrape (…)" or "direct scrape"
    duration_s: float

    @property
    def status(self) -> Status:
        return report_status(
            (r.status for r in self.runbooks), (f.status for r in self.runbooks for f in r.findings)
        )

    @property
    def exit_code(self) -> int:
        return int(self.status)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": self.status.name,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "sources": self.sources,
            "duration_s": round(self.duration_s, 3),
            "runbooks": [r.as_json() for r in self.runbooks],
        }
