"""``triage``: firing alerts → what to run, worst first. Pure: alerts come in as Prometheus returns them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from concertops.model.status import Status

# Alert severity label → the check's status (and so the exit code).
SEVERITY_STATUS = {"page": Status.CRITICAL, "warn": Status.WARNING, "info": Status.WARNING}
_RANK = {"page": 0, "warn": 1, "info": 2}


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    priority: str
    runbook: str | None
    summary: str
    description: str
    active_at: str
    state: str  # firing | pending
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Alert:
        labels = dict(raw.get("labels", {}))
        notes = raw.get("annotations", {})
        return cls(
            name=labels.get("alertname", "?"),
            severity=labels.get("severity", "warn"),
            priority=labels.get("priority", ""),
            runbook=labels.get("runbook"),
            summary=notes.get("summary", ""),
            description=notes.get("description", ""),
            active_at=str(raw.get("activeAt", "")),
            state=str(raw.get("state", "firing")),
            labels=labels,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "severity": self.severity,
            "priority": self.priority,
            "state": self.state,
            "summary": self.summary,
            "description": self.description,
            "active_at": self.active_at,
        }


@dataclass(frozen=True)
class Lead:
    """One runbook to run, with the alerts that point at it."""

    runbook: str | None  # None: alerts without a runbook
    alerts: tuple[Alert, ...]

    @property
    def severity(self) -> str:
        return min((a.severity for a in self.alerts), key=lambda s: _RANK.get(s, 3))

    @property
    def status(self) -> Status:
        return SEVERITY_STATUS.get(self.severity, Status.WARNING)

    @property
    def command(self) -> str:
        if self.runbook is None:
            return "see runbooks/README.md"
        return f"concertops {self.runbook.replace('-', '').lower()}"


def triage(alerts: Iterable[Alert]) -> list[Lead]:
    """Firing alerts grouped by runbook, the most severe group first (then by runbook id)."""
    groups: dict[str | None, list[Alert]] = {}
    for alert in alerts:
        if alert.state == "firing":
            groups.setdefault(alert.runbook, []).append(alert)
    leads = [
        Lead(runbook, tuple(sorted(found, key=lambda a: (_RANK.get(a.severity, 3), a.name))))
        for runbook, found in groups.items()
    ]
    return sorted(
        leads, key=lambda lead: (_RANK.get(lead.severity, 3), lead.runbook is None, lead.runbook or "")
    )


def overall(leads: list[Lead]) -> Status:
    return max((lead.status for lead in leads), default=Status.OK)
