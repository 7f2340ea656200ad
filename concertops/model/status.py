"""A status is its exit code (the Nagios plugin convention cron, Icinga and CI understand).

The order, as nagiosplugin documents its own: a check is CRITICAL when anything was measured critical;
otherwise UNKNOWN when any runbook could not be judged (its decisive signals were not measured); otherwise
the worst status measured. "Not applicable" is a finding's own state (this deployment cannot have the
signal): it is never an exit code and never evidence of health.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Status(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
    NOT_APPLICABLE = 4  # a finding only

    @property
    def label(self) -> str:
        return "N/A" if self is Status.NOT_APPLICABLE else self.name


MEASURED = (Status.OK, Status.WARNING, Status.CRITICAL)


def runbook_status(judged: Iterable[tuple[Status, bool]]) -> Status:
    """A runbook's status from its findings as ``(status, decisive)``: UNKNOWN when no decisive signal was
    measured, whatever the others read; else the worst status measured."""
    findings = list(judged)
    if not any(decisive and status in MEASURED for status, decisive in findings):
        return Status.UNKNOWN
    return max(status for status, _decisive in findings if status in MEASURED)


def not_ok_past_a_map_gap(status: Status, gaps: Iterable[tuple[Status, bool, bool]]) -> Status:
    """OK is UNKNOWN when a decisive signal could not be read because what the service map names is not
    there (``(status, decisive, map_gap)``): a table missing may be the very one that shows the incident.
    A source down or not configured leaves the others to judge, as before."""
    if status is Status.OK and any(decisive and gap and s is Status.UNKNOWN for s, decisive, gap in gaps):
        return Status.UNKNOWN
    return status


def report_status(runbooks: Iterable[Status], findings: Iterable[Status]) -> Status:
    """A whole check: CRITICAL when anything was measured critical, else UNKNOWN when a runbook could not
    be judged (or there was none), else the worst runbook status."""
    statuses = list(runbooks)
    if Status.CRITICAL in statuses or Status.CRITICAL in set(findings):
        return Status.CRITICAL
    if not statuses or Status.UNKNOWN in statuses:
        return Status.UNKNOWN
    return max(statuses)
