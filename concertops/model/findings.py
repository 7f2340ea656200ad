"""What probing measured and what judging concluded: frozen values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from concertops.model.params import split
from concertops.model.status import Status


@dataclass(frozen=True)
class Observation:
    """One signal as measured: a value, or the error that prevented it (never both)."""

    signal: str
    source: str  # "prometheus", "direct scrape", "sql", "kafka"
    query: str
    value: float | None = None
    error: str | None = None
    rows: tuple[tuple[Any, ...], ...] = ()  # evidence rows (SQL detail queries)
    columns: tuple[str, ...] = ()  # the evidence rows' column names
    history: tuple[float, ...] = ()  # the last 30 minutes, for the sparkline
    not_applicable: str = (
        ""  # why this deployment cannot have the signal (e.g. MySQL's processlist on SQLite)
    )
    # The value is a lower bound: the measurement was cut short before it ended (a request still waiting
    # for its answer at the deadline). Beyond a threshold it judges; short of one it decides nothing.
    at_least: bool = False
    # What the reader must know with the value (the zone it was judged in, a topic the broker lacks).
    note: str = ""
    # The warning threshold the service's map gives (a signal ``above_constant``), bound by the map.
    ceiling: float | None = None
    # Not measured because what the service map names is not there (concertops.model.errors.MapGap).
    map_gap: bool = False


@dataclass(frozen=True)
class Finding:
    signal: str
    title: str
    status: Status
    value: float | None
    threshold: float | None
    source: str
    query: str
    message: str
    unit: str = ""
    rows: tuple[tuple[Any, ...], ...] = ()
    history: tuple[float, ...] = ()
    columns: tuple[str, ...] = ()
    warning: float | None = None  # the signal's thresholds, for perfdata and exporters
    critical: float | None = None
    below: bool = False
    decisive: bool = False
    note: str = ""  # the observation's note (also at the end of the message)
    map_gap: bool = False  # UNKNOWN because what the map names is not there

    def as_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "title": self.title,
            "status": self.status.name,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "source": self.source,
            "query": self.query,
            "message": self.message,
            "rows": [list(map(_plain, row)) for row in self.rows],
            "columns": list(self.columns),
            "warning": self.warning,
            "critical": self.critical,
            "decisive": self.decisive,
            "note": self.note,
        }


@dataclass(frozen=True)
class Step:
    """One remediation step of a plan: what it changes, within which limits, to what effect.

    ``config`` is the action's typed parameter model (see ``concertops.model.params``), with the page's
    values and any operator override."""

    id: str
    title: str
    action: str
    config: Any
    expect: str = ""
    because: tuple[str, ...] = ()  # the signals that call for it

    @property
    def params(self) -> dict[str, Any]:
        return split(self.config)[0]

    @property
    def limits(self) -> dict[str, Any]:
        return split(self.config)[1]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "action": self.action,
            "params": self.params,
            "limits": self.limits,
            "expect": self.expect,
            "because": list(self.because),
        }


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | type(None)) else str(value)
