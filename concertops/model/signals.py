"""Typed signals, as a runbook page's front matter declares them.

A metric signal (gauge, rate, ratio, quantile) can be read from Prometheus or from a direct scrape of the
service's ``/metrics`` endpoints; both read the same declaration, so the thresholds mean the same either way.
Values are summed across instances before any division (a per-series ratio of 5xx over all requests is 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from concertops.model.errors import ConfigError

Kind = Literal[
    "gauge",
    "rate",
    "ratio",
    "quantile",
    "sql",
    "kafka_lag",
    "topic_depth",
    "queue",
    "redis",
    "unpublished",
    "http",
]
METRIC_KINDS = ("gauge", "rate", "ratio", "quantile")
# ``queue``: the waiting queue as the service's map says it is stored (SQL rows or Redis sorted sets);
# bound to an ``sql`` or a ``redis`` signal before it is measured (concertops.contract.binding).
QUEUE_MEASURES = ("waiting", "active", "oldest_waiting_s")
# ``lock_waiters``: requests retrying a lock family's keys (SET calls a second times the retry period);
# ``lock_keys``: the family's keys held now (a bounded SCAN), each with its time left as evidence.
REDIS_MEASURES = ("zcard", "oldest_score_age_s", "lock_waiters", "lock_keys")
# ``unpublished``: SUCCESS payments of a window whose ``payment.completed`` is not on the topic (a service
# without an outbox; concertops.sources.reconcile).
# ``http``: a black-box probe the service map names (``probe: "{availability}"``), GETs to each backend URL.
HTTP_MEASURES = ("p95_s", "error_share", "backends_down")
KINDS: tuple[str, ...] = get_args(Kind)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
WINDOW_PATTERN = re.compile(r"^\d+[smh]$")


class RunbookPageError(ConfigError):
    """A runbook page's front matter is malformed: the message names the file and the field."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


def parse_selector(text: str) -> tuple[Matcher, ...]:
    """``status=~"5..", route="/payments"`` → matchers (the PromQL label-matcher syntax)."""
    matchers, pos = [], 0
    text = text.strip()
    while pos < len(text):
        found = _MATCHER.match(text, pos)
        if not found:
            raise ValueError(f'bad label selector {text!r} (expected label="value", label=~"regex", …)')
        matchers.append(Matcher(found[1], found[2], found[3]))
        pos = found.end()
    return tuple(matchers)


@dataclass(frozen=True)
class Series:
    """One metric expression: a gauge summed across instances, or a counter's rate over a window."""

    kind: Literal["gauge", "rate"]
    metric: str
    selector: str = ""
    window: str = "1m"
    # How instances combine: a sum for per-instance quantities (pool in use); max or min for a value every
    # instance reports alike (outbox backlog, read from the one database) or one that any instance can fail.
    agg: Literal["sum", "max", "min"] = "sum"

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return parse_selector(self.selector)

    def promql(self) -> str:
        selected = f"{self.metric}{{{self.selector}}}" if self.selector else self.metric
        if self.kind == "gauge":
            return f"{self.agg}({selected})"
        # A counter nobody has incremented yet has no series: that is a rate of 0, not a missing signal.
        return f"(sum(rate({selected}[{self.window}])) or vector(0))"


@dataclass(frozen=True)
class Signal:
    name: str
    title: str
    kind: Kind
    warning: float | None = None
    critical: float | None = None
    below: bool = False  # thresholds are floors (e.g. a success rate), not ceilings
    unit: str = ""
    main: bool = False  # the runbook's headline signal (sparkline in the table view)
    # A decisive signal can tell on its own whether the incident is there: a runbook none of whose
    # decisive signals was measured is UNKNOWN, whatever the others read.
    decisive: bool = False
    # metric kinds
    series: Series | None = None
    denominator: Series | None = None
    quantile: float = 0.95
    # sql
    query: str = ""
    column: int = 0
    detail: str = ""  # rows shown as evidence when the signal is not OK
    # On SQLite (the embedded default): the same question in SQLite's words, or why it has no answer there.
    sqlite_query: str = ""
    sqlite_detail: str = ""
    mysql_only: str = ""
    # Why a NULL answer means nothing was measured (UNKNOWN with this reason); else NULL reads 0.
    null_means: str = ""
    # Server privileges the query needs to see everything (PROCESS for the whole processlist): without
    # one, the server answers with a smaller number, not an error, so the signal reads UNKNOWN instead.
    privileges: tuple[str, ...] = ()
    # The logical table whose clock pair decides the zone of the query's ``{now}`` (set by the binding).
    zoned: str = ""
    # ``table.column``: on a service where that column is unique, what the signal counts cannot happen
    # (B-1's double payments where payment.reservation is unique): not available there, and not queried.
    impossible_if_unique: str = ""
    # queue (measure: one of QUEUE_MEASURES), redis (key, measure: one of REDIS_MEASURES)
    measure: str = ""
    # A deploy constant (the map's) the value must not exceed: the binding makes it the warning threshold.
    above_constant: str = ""
    key: str = ""
    retry_s: float = 0.0  # lock_waiters: how often one waiter retries (the map's lock_retry_ms)
    # kafka
    group: str = ""
    topic: str = ""
    # concertops's own group (e.g. the DLQ replay's): before its first run it does not exist, and then
    # everything in the topic is behind. Any other missing group is a finding (UNKNOWN), never a lag of 0.
    group_is_ours: bool = False
    # unpublished: the window looked at, and its newest part left out (publishes still retrying)
    window_s: int = 0
    settle_s: int = 0
    # Measured only on a service that exports no metrics (where its metrics answer the same question
    # better): on one that does, "not available" with this reason.
    without_metrics: str = ""
    # http: the map's probe (logical name, bound to its path), its samples and per-request timeout
    probe: str = ""
    path: str = ""
    samples: int = 0
    probe_timeout_s: float = 0.0

    @property
    def source_kind(self) -> str:
        if self.kind in METRIC_KINDS:
            return "metrics"
        return {"sql": "sql", "queue": "queue", "redis": "redis", "http": "http"}.get(self.kind, "kafka")

    def with_window(self, window: str) -> Signal:
        """This signal over another window (gauges and non-metric signals are returned as they are)."""

        def shorter(series: Series | None) -> Series | None:
            return replace(series, window=window) if series is not None and series.kind == "rate" else series

        return replace(self, series=shorter(self.series), denominator=shorter(self.denominator))

    def promql(self) -> str:
        assert self.series is not None
        if self.kind == "ratio":
            assert self.denominator is not None
            return f"({self.series.promql()}) / ({self.denominator.promql()})"
        if self.kind == "quantile":
            s = self.series
            selected = f"{s.metric}_bucket{{{s.selector}}}" if s.selector else f"{s.metric}_bucket"
            return f"histogram_quantile({self.quantile}, sum by (le) (rate({selected}[{s.window}])))"
        return self.series.promql()

    def describe_query(self) -> str:
        if self.kind in METRIC_KINDS:
            return self.promql()
        if self.kind == "sql":
            return self.query
        if self.kind == "queue":
            return f"queue {self.measure}"
        if self.kind == "redis":
            return f"{self.measure} of {self.key}"
        if self.kind == "kafka_lag":
            return f"consumer group {self.group} lag on {self.topic}"
        if self.kind == "http":
            return f"{self.measure} of {self.samples or '?'} GET {self.path or self.probe} per backend URL"
        if self.kind == "unpublished":
            return (
                f"SUCCESS payments of the last {self.window_s} s (but the newest {self.settle_s} s) "
                f"with no message on {self.topic}"
            )
        return f"messages in {self.topic}"


def parse_signal(raw: Any, where: str) -> Signal:
    """One ``signals:`` entry of a page; every problem names ``where`` (file and field)."""
    if not isinstance(raw, dict):
        raise RunbookPageError(f"{where}: a signal must be a mapping")
    name = _text(raw, "name", where)
    where = f"{where} ({name})"
    kind = _text(raw, "kind", where)
    if kind not in KINDS:
        raise RunbookPageError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    common: dict[str, Any] = {
        "name": name,
        "title": str(raw.get("title") or name),
        "kind": kind,
        "warning": _number(raw, "warning", where),
        "critical": _number(raw, "critical", where),
        "below": bool(raw.get("below", False)),
        "unit": str(raw.get("unit", "")),
        "main": bool(raw.get("main", False)),
        "decisive": bool(raw.get("decisive", False)),
    }
    common["above_constant"] = str(raw.get("above_constant", ""))
    thresholds = common["warning"] is not None or common["critical"] is not None
    if not thresholds and not raw.get("info") and not common["above_constant"]:
        raise RunbookPageError(
            f"{where}: give a warning or critical threshold (or above_constant, or info: true)"
        )
    if kind in ("gauge", "rate", "quantile"):
        common["series"] = _series(raw, "gauge" if kind == "gauge" else "rate", where)
        if kind == "quantile":
            common["quantile"] = _number(raw, "q", where) or 0.95
    elif kind == "ratio":
        common["series"] = _series(raw.get("numerator"), None, f"{where} numerator")
        common["denominator"] = _series(raw.get("denominator"), None, f"{where} denominator")
    elif kind == "sql":
        common["query"] = _text(raw, "query", where)
        common["column"] = int(raw.get("column", 0))
        common["detail"] = str(raw.get("detail", ""))
        common["sqlite_query"] = str(raw.get("sqlite_query", ""))
        common["sqlite_detail"] = str(raw.get("sqlite_detail", ""))
        common["mysql_only"] = str(raw.get("mysql_only", ""))
        common["without_metrics"] = str(raw.get("without_metrics", ""))
        common["null_means"] = str(raw.get("null_means", ""))
        privileges = raw.get("privileges") or []
        if not isinstance(privileges, list) or not all(isinstance(p, str) for p in privileges):
            raise RunbookPageError(f"{where}: privileges must be a list of names, e.g. [PROCESS]")
        common["privileges"] = tuple(p.upper() for p in privileges)
        common["impossible_if_unique"] = str(raw.get("impossible_if_unique", ""))
    elif kind in ("queue", "redis"):
        allowed = QUEUE_MEASURES if kind == "queue" else REDIS_MEASURES
        common["measure"] = _text(raw, "measure", where)
        if common["measure"] not in allowed:
            raise RunbookPageError(
                f"{where}: measure {common['measure']!r} is not one of {', '.join(allowed)}"
            )
        if kind == "redis":
            common["key"] = _text(raw, "key", where)
    elif kind == "http":
        common["probe"] = _text(raw, "probe", where)
        common["measure"] = _text(raw, "measure", where)
        if common["measure"] not in HTTP_MEASURES:
            raise RunbookPageError(
                f"{where}: measure {common['measure']!r} is not one of {', '.join(HTTP_MEASURES)}"
            )
    elif kind == "unpublished":
        common["topic"] = _text(raw, "topic", where)
        common["window_s"] = _seconds(raw, "window", where)
        common["settle_s"] = _seconds(raw, "settle", where)
    elif kind == "kafka_lag":
        common["group"], common["topic"] = _text(raw, "group", where), _text(raw, "topic", where)
        common["group_is_ours"] = bool(raw.get("group_is_ours", False))
    else:
        common["topic"] = _text(raw, "topic", where)
    return Signal(**common)


def _series(raw: Any, kind: str | None, where: str) -> Series:
    if not isinstance(raw, dict):
        raise RunbookPageError(f"{where}: expected a mapping with metric (and labels, window)")
    kind = kind or str(raw.get("kind", "gauge"))
    if kind not in ("gauge", "rate"):
        raise RunbookPageError(f"{where}: kind must be gauge or rate, not {kind!r}")
    selector = str(raw.get("labels", ""))
    try:
        parse_selector(selector)
    except ValueError as exc:
        raise RunbookPageError(f"{where}: labels: {exc}") from None
    agg = str(raw.get("agg", "sum"))
    if agg not in ("sum", "max", "min") or (agg != "sum" and kind == "rate"):
        raise RunbookPageError(f"{where}: agg {agg!r} must be sum, max or min (rates are always summed)")
    window = str(raw.get("window", "1m"))
    if not WINDOW_PATTERN.match(window):
        raise RunbookPageError(f"{where}: window {window!r} must look like 30s, 1m or 5m")
    return Series(kind, _text(raw, "metric", where), selector, window, agg)  # type: ignore[arg-type]


def _seconds(raw: dict[str, Any], key: str, where: str) -> int:
    value = _text(raw, key, where)
    if not WINDOW_PATTERN.match(value):
        raise RunbookPageError(f"{where}: {key} {value!r} must look like 30s, 1m or 1h")
    return int(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RunbookPageError(f"{where}: field {key!r} is missing or empty")
    return value.strip()


def _number(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RunbookPageError(f"{where}: field {key!r} must be a number, not {value!r}")
    return float(value)
