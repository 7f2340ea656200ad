"""``concertops exporter``: the runbooks' signals measured from the stores, served to Prometheus.

A service that exports no metrics (the production service) still gets the manual's alerts: what
concertops measures from its database, Redis, broker and HTTP API is served as series Prometheus scrapes,
and the rules of ``alerts/concertops-exporter.yml`` page on them.

Cost is bounded: every source (sql, redis, kafka, http) is measured by a thread of its own every
``interval`` seconds, each with its own deadline; a scrape only reads the last results and never runs a
query. A slow or dead source delays nothing but itself: its results go stale (older than two intervals), and
a stale or failed source serves ``concertops_source_up 0`` and UNKNOWN (3) for its signals, never a value.
Metric signals are not served: the stores are the exporter's only sources.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from concertops.config import Profile
from concertops.contract.binding import bind
from concertops.contract.service_map import ServiceMap
from concertops.model.evaluate import judge, with_ceiling
from concertops.model.findings import Observation
from concertops.model.signals import METRIC_KINDS, Signal
from concertops.model.status import Status, not_ok_past_a_map_gap, runbook_status
from concertops.redact import error_line

STALE_AFTER_INTERVALS = 2.0
# Status values of concertops_signal_status and concertops_runbook_status.
NOT_APPLICABLE = 4


@dataclass(frozen=True)
class Served:
    """One page signal as the exporter serves it: its runbook, the page's signal, and the bound one (or
    why the service cannot give it)."""

    runbook: str
    signal: Signal
    bound: Signal | str

    @property
    def decisive(self) -> bool:
        return self.signal.decisive

    @property
    def source(self) -> str:
        return self.bound.source_kind if isinstance(self.bound, Signal) else ""


@dataclass
class Cycle:
    """A source's last measurement: when it finished, how long it took, per signal what it saw."""

    finished: float = 0.0  # time.time()
    duration_s: float = 0.0
    observations: dict[str, Observation] = field(default_factory=dict)  # bound signal's query → observed
    query_seconds: dict[str, float] = field(default_factory=dict)
    up: bool = False
    error: str = ""


def served_signals(runbooks: list[Any], shape: ServiceMap) -> list[Served]:
    """Every non-metric signal of every runbook, bound to the service's map."""
    found = []
    for runbook in runbooks:
        for signal in runbook.page.signals:
            if signal.kind in METRIC_KINDS:
                continue
            found.append(Served(runbook.id, signal, bind(signal, shape)))
    return found


def _key(signal: Signal) -> str:
    return f"{signal.kind}:{signal.describe_query()}"


class SourceLoop(threading.Thread):
    """Measures one source's signals every ``interval`` seconds, each cycle within ``deadline_s``."""

    def __init__(
        self,
        name: str,
        signals: list[Signal],
        open_source: Callable[[], Any],
        interval_s: float,
        deadline_s: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"exporter-{name}", daemon=True)
        unique = {_key(s): s for s in signals}
        self.source, self.signals = name, list(unique.values())
        self.open_source, self.interval_s, self.deadline_s, self.stop = (
            open_source,
            interval_s,
            deadline_s,
            stop,
        )
        self.last = Cycle()
        self._persistent: Any = None

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self.last = self.measure()
            self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        self._close(self._persistent)

    def measure(self) -> Cycle:
        cycle = Cycle()
        started = time.monotonic()
        deadline = started + self.deadline_s
        try:
            source = self._source()
        except Exception as exc:  # a source that cannot even be opened: every signal down
            cycle.error = error_line(exc)
            source = None
        answered = False
        for signal in self.signals:
            key = _key(signal)
            if source is None or time.monotonic() > deadline:
                why = cycle.error or f"the {self.source} source's deadline of {self.deadline_s:g} s passed"
                cycle.observations[key] = Observation(signal.name, self.source, key, error=why)
                continue
            t0 = time.monotonic()
            try:
                observed = source.observe(signal)
            except Exception as exc:
                observed = Observation(signal.name, self.source, key, error=error_line(exc))
            cycle.query_seconds[key] = time.monotonic() - t0
            cycle.observations[key] = observed
            answered = answered or observed.error is None
        if source is not None and source is not self._persistent:
            self._close(source)
        cycle.duration_s = time.monotonic() - started
        cycle.finished = time.time()
        cycle.up = answered
        if not answered and not cycle.error:
            cycle.error = next((o.error for o in cycle.observations.values() if o.error), "") or ""
        return cycle

    def _source(self) -> Any:
        opened = self.open_source()
        if getattr(opened, "persistent", False):  # kept across cycles (a connection pool)
            if self._persistent is None:
                self._persistent = opened
            else:
                self._close(opened)
            return self._persistent
        return opened

    @staticmethod
    def _close(source: Any) -> None:
        if source is not None and hasattr(source, "close"):
            with contextlib.suppress(Exception):  # closing must never stop the loop
                source.close()


def source_opener(profile: Profile, shape: ServiceMap, source: str, timeout_s: float) -> Callable[[], Any]:
    """A factory for one source's adapter, as ``concertops check`` opens it."""

    def persistent(adapter: Any) -> Any:
        adapter.persistent = True
        return adapter

    def opener() -> Any:
        if source == "sql":
            from concertops.sources.sql import SqlSource

            if not profile.database_url:
                raise LookupError("no database_url configured")
            return persistent(SqlSource(profile.database_url, timeout_s, connections=2, shape=shape))
        if source == "redis":
            from concertops.sources.redis_queue import RedisSource

            if not profile.redis_url:
                raise LookupError("no redis_url configured")
            return persistent(RedisSource(profile.redis_url, timeout_s, shape))
        if source == "http":
            from concertops.sources.http_probe import HttpProbeSource

            return HttpProbeSource(profile.backend_urls, time.monotonic() + timeout_s)
        # kafka: lag and depth, and the payments' reconciliation (database and broker both)
        if not profile.kafka_bootstrap_servers:
            raise LookupError("no kafka_bootstrap_servers configured")
        return _KafkaSources(profile, shape, timeout_s)

    return opener


class _KafkaSources:
    """Lag and depth (one admin client per cycle), and the reconciliation of payments against a topic."""

    def __init__(self, profile: Profile, shape: ServiceMap, timeout_s: float) -> None:
        from concertops.sources.kafka import KafkaSource

        assert profile.kafka_bootstrap_servers
        self.profile, self.shape, self.timeout_s = profile, shape, timeout_s
        self.kafka = KafkaSource(profile.kafka_bootstrap_servers, timeout_s)
        self._reconcile: Any = None

    def observe(self, signal: Signal) -> Observation:
        if signal.kind != "unpublished":
            return self.kafka.observe(signal)
        if self._reconcile is None:
            from concertops.sources.reconcile import ReconcileSource

            if not self.profile.database_url:
                raise LookupError("no database_url configured")
            assert self.profile.kafka_bootstrap_servers
            self._reconcile = ReconcileSource(
                self.profile.database_url, self.profile.kafka_bootstrap_servers, self.shape, self.timeout_s
            )
        return self._reconcile.observe(signal)

    def close(self) -> None:
        if self._reconcile is not None:
            self._reconcile.close()


@dataclass(frozen=True)
class Judged:
    served: Served
    status: int  # 0 OK … 3 UNKNOWN, 4 not applicable
    value: float | None
    map_gap: bool = False  # UNKNOWN because what the map names is not there


class Exporter:
    """The loops of every source, and what a scrape reads from them."""

    def __init__(self, profile: Profile, runbooks: list[Any], interval_s: float, deadline_s: float) -> None:
        from concertops.contract import service_map

        self.shape = service_map.for_profile(profile)
        self.interval_s = interval_s
        self.served = served_signals(runbooks, self.shape)
        self.stop = threading.Event()
        by_source: dict[str, list[Signal]] = {}
        for item in self.served:
            if isinstance(item.bound, Signal):
                by_source.setdefault(item.source, []).append(item.bound)
        self.loops = {
            name: SourceLoop(
                name,
                signals,
                source_opener(profile, self.shape, name, deadline_s),
                interval_s,
                deadline_s,
                self.stop,
            )
            for name, signals in sorted(by_source.items())
        }

    def start(self) -> None:
        for loop in self.loops.values():
            loop.start()

    def close(self, wait_s: float = 1.5) -> None:
        self.stop.set()
        end = time.monotonic() + wait_s
        for loop in self.loops.values():
            loop.join(max(0.0, end - time.monotonic()))

    def fresh(self, source: str) -> bool:
        cycle = self.loops[source].last
        return (
            bool(cycle.finished) and time.time() - cycle.finished <= STALE_AFTER_INTERVALS * self.interval_s
        )

    def judged(self) -> Iterator[Judged]:
        for item in self.served:
            if not isinstance(item.bound, Signal):
                yield Judged(item, NOT_APPLICABLE, None)
                continue
            loop = self.loops[item.source]
            observed = loop.last.observations.get(_key(item.bound))
            if observed is None or not self.fresh(item.source):
                yield Judged(item, int(Status.UNKNOWN), None)
                continue
            finding = judge(item.signal, with_ceiling(observed, item.bound))
            if finding.status is Status.NOT_APPLICABLE:
                yield Judged(item, NOT_APPLICABLE, None)
            elif finding.status is Status.UNKNOWN:
                yield Judged(item, int(Status.UNKNOWN), None, finding.map_gap)
            else:
                yield Judged(item, int(finding.status), finding.value)

    def runbook_statuses(self, judged: list[Judged]) -> dict[str, int]:
        by_runbook: dict[str, list[tuple[Status, bool, bool]]] = {}
        for j in judged:
            status = Status.NOT_APPLICABLE if j.status == NOT_APPLICABLE else Status(j.status)
            by_runbook.setdefault(j.served.runbook, []).append((status, j.served.decisive, j.map_gap))
        return {
            runbook: int(not_ok_past_a_map_gap(runbook_status((s, d) for s, d, _g in found), found))
            for runbook, found in by_runbook.items()
        }


class Collector:
    """What a scrape reads: the exporter's last results as Prometheus series (no query runs here)."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def describe(self) -> list[Any]:
        return []  # series are known only at collect time; registering must not measure anything

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        exporter = self.exporter
        judged = list(exporter.judged())
        labels = ["runbook", "signal"]
        value = GaugeMetricFamily(
            "concertops_signal_value", "A runbook signal's last measured value", labels=labels
        )
        status = GaugeMetricFamily(
            "concertops_signal_status",
            "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, 4 not applicable",
            labels=labels,
        )
        took = GaugeMetricFamily(
            "concertops_query_duration_seconds", "How long the signal's query took, last cycle", labels=labels
        )
        manual_waiting = GaugeMetricFamily("queue_waiting_tokens", "WAITING queue tokens (the manual's name)")
        manual_lag = GaugeMetricFamily(
            "kafka_consumer_lag", "Consumer group lag (the manual's name)", labels=["group", "topic"]
        )
        lags: set[tuple[str, str]] = set()
        for j in judged:
            names = [j.served.runbook, j.served.signal.name]
            status.add_metric(names, j.status)
            if j.value is None:
                continue
            value.add_metric(names, j.value)
            bound = j.served.bound
            assert isinstance(bound, Signal)
            seconds = exporter.loops[j.served.source].last.query_seconds.get(_key(bound))
            if seconds is not None:
                took.add_metric(names, seconds)
            if bound.kind == "redis" and j.served.signal.measure == "waiting" and not manual_waiting.samples:
                manual_waiting.add_metric([], j.value)
            if bound.kind == "kafka_lag" and (bound.group, bound.topic) not in lags:
                lags.add((bound.group, bound.topic))
                manual_lag.add_metric([bound.group, bound.topic], j.value)
        runbooks = GaugeMetricFamily(
            "concertops_runbook_status", "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", labels=["runbook"]
        )
        for runbook, code in sorted(exporter.runbook_statuses(judged).items()):
            runbooks.add_metric([runbook], code)
        up = GaugeMetricFamily(
            "concertops_source_up", "1 when the source answered its last cycle in time", labels=["source"]
        )
        duration = GaugeMetricFamily(
            "concertops_source_duration_seconds", "How long the source's last cycle took", labels=["source"]
        )
        for name, loop in sorted(exporter.loops.items()):
            up.add_metric([name], 1 if loop.last.up and exporter.fresh(name) else 0)
            if loop.last.finished:
                duration.add_metric([name], loop.last.duration_s)
        yield from (value, status, took, runbooks, up, duration, manual_waiting, manual_lag)
