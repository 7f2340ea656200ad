"""Probe: every signal of the chosen runbooks measured once, in parallel, all within one deadline.

Metric signals go to Prometheus when one is configured and answers, else to a direct scrape of the
service's ``/metrics`` endpoints (the report says "degraded: direct scrape"). A signal shared by several
runbooks (the same query) is measured once. An unreachable source makes only its own signals UNKNOWN.

``timeout_s`` bounds the whole probe: the Prometheus ping, connects, pool waits, reads, Kafka metadata and
HTTP. The workers are daemon threads, so a source that accepts connections and never answers is abandoned
at the deadline (its signals UNKNOWN, "timed out") instead of holding the command up.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from typing import Any

from concertops.config import Profile
from concertops.model.evaluate import with_ceiling
from concertops.model.findings import Observation
from concertops.model.signals import METRIC_KINDS, Signal
from concertops.redact import error_line, redact_url
from concertops.sources.threads import DaemonPool

WORKERS = 16
PING_TIMEOUT_S = 2.0
HTTP_MARGIN_S = 0.3  # between the HTTP probe's last request and the check's deadline


@dataclass(frozen=True)
class Probed:
    observations: dict[tuple[str, str], Observation]  # (kind, query) → observation
    sources: dict[str, str]
    mode: str

    def for_signal(self, signal: Signal) -> Observation:
        """The shared measurement under this runbook's own signal name."""
        return replace(self.observations[_key(signal)], signal=signal.name)


def probe(
    profile: Profile,
    signals: Iterable[Signal],
    timeout_s: float,
    history_for: frozenset[str] = frozenset(),
    scrape_interval_s: float = 1.0,
) -> Probed:
    """Measure ``signals`` (deduplicated); ``history_for`` names the signals that also want 30 minutes of
    history (the sparkline), fetched from Prometheus only."""
    from concertops.contract.binding import bind
    from concertops.contract.service_map import for_profile as load_map

    deadline = time.monotonic() + timeout_s
    shape = load_map(profile)
    # Keyed by the page's signal, measured in the service's own names (its service map).
    unique: dict[tuple[str, str], Signal] = {}
    unavailable: dict[tuple[str, str], Observation] = {}
    for signal in signals:
        key = _key(signal)
        if key in unique or key in unavailable:
            continue
        bound = bind(signal, shape)
        if isinstance(bound, str):
            kind = signal.source_kind
            unavailable[key] = Observation(signal.name, kind, signal.describe_query(), not_applicable=bound)
        else:
            unique[key] = bound
    sources: dict[str, str] = {}
    adapters = _Adapters(profile, timeout_s, deadline, shape)
    metric_signals = [s for s in unique.values() if s.kind in METRIC_KINDS]
    futures: dict[Future[Observation], tuple[str, str]] = {}
    # What a source measured up to the deadline, for the sources whose measurement grows over time.
    so_far: dict[tuple[str, str], Callable[[], Observation | None]] = {}
    # A thread per measurement: a source that hangs must not keep another's signals waiting in a queue.
    pool = DaemonPool(max(WORKERS, len(unique) + 1))

    def start(key: tuple[str, str], task: Callable[[], Observation]) -> None:
        futures[pool.submit(task)] = key

    try:
        # The HTTP probes first, before the other adapters' imports and connects: what they measure is
        # time, and every moment they wait to send counts against the answer's chance to arrive.
        if any(signal.kind == "http" for signal in unique.values()):
            import httpx  # noqa: F401  (here, before any other thread competes for the interpreter)
        for key, signal in unique.items():
            if signal.kind == "http":
                start(key, _bind(adapters.http().observe, signal))
                so_far[key] = _bind(adapters.http().so_far, signal)
        prometheus, mode = _prometheus(profile, timeout_s, sources) if metric_signals else (None, "")
        scrape = None
        if metric_signals and prometheus is None:
            from concertops.sources.scrape import ScrapeSource

            scrape = ScrapeSource(profile.metrics_urls, timeout_s, scrape_interval_s)
            collected = pool.submit(lambda: scrape.collect(metric_signals))
        for key, signal in unique.items():
            if signal.kind in METRIC_KINDS:
                if prometheus is not None:
                    start(key, _bind(prometheus.observe, signal, signal.name in history_for))
                else:
                    assert scrape is not None
                    start(key, _after(collected, scrape.observe, signal))
            # Each source is made (its imports, its engine) on the first worker thread that needs it, not
            # here: on a loaded machine that work alone can outlast the deadline the threads keep.
            elif signal.kind == "sql":
                start(key, _made(adapters.sql, signal))
            elif signal.kind == "redis":
                start(key, _made(adapters.redis, signal))
            elif signal.kind == "unpublished":
                start(key, _made(functools.partial(adapters.reconcile, shape), signal))
            elif signal.kind != "http":
                start(key, _made(adapters.kafka, signal))
        observations = _gather(futures, so_far, unique, deadline, timeout_s)
    finally:
        pool.close()
    adapters.close()
    for key, observed in observations.items():
        observations[key] = with_ceiling(observed, unique[key])
        # Each source's state: "ok", or the first error one of its signals met.
        kind = unique[key].source_kind
        if observed.error and sources.get(kind, "ok") == "ok":
            sources[kind] = observed.error
        sources.setdefault(kind, "ok")
    return Probed({**observations, **unavailable}, sources, mode)


def _gather(
    futures: dict[Future[Observation], tuple[str, str]],
    so_far: dict[tuple[str, str], Callable[[], Observation | None]],
    signals: dict[tuple[str, str], Signal],
    deadline: float,
    budget_s: float,
) -> dict[tuple[str, str], Observation]:
    results: dict[tuple[str, str], Observation] = {}
    pending = set(futures)
    while pending and (left := deadline - time.monotonic()) > 0:
        done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        for future in done:
            key = futures[future]
            try:
                results[key] = future.result()
            except Exception as exc:  # a source adapter bug must not take the whole check down
                s = signals[key]
                results[key] = Observation(s.name, s.source_kind, s.describe_query(), error=error_line(exc))
    for future in pending:
        future.cancel()
        key = futures[future]
        s = signals[key]
        partial = so_far[key]() if key in so_far else None
        results[key] = partial or Observation(
            s.name, s.source_kind, s.describe_query(), error=f"timed out after {budget_s:g} s"
        )
    return results


def _prometheus(profile: Profile, timeout_s: float, sources: dict[str, str]) -> tuple[Any, str]:
    if not profile.prometheus_url:
        return None, "direct scrape (no Prometheus configured)"
    from concertops.sources.prometheus import prometheus

    source = prometheus(profile.prometheus_url, timeout_s)
    try:
        # A short look first: a Prometheus that hangs must leave the deadline to the direct scrape.
        source.ping(min(PING_TIMEOUT_S, timeout_s / 3))
    except Exception as exc:
        sources["prometheus"] = f"{redact_url(profile.prometheus_url)}: {error_line(exc)}"
        return None, "degraded: direct scrape (Prometheus did not answer)"
    sources["prometheus"] = "ok"
    return source, "prometheus"


class _Adapters:
    """SQL, Redis and Kafka adapters, created on first use (their imports are not free)."""

    def __init__(self, profile: Profile, timeout_s: float, deadline: float, shape: Any) -> None:
        self.profile, self.timeout_s, self.deadline, self.shape = profile, timeout_s, deadline, shape
        self._sql: Any = None
        self._kafka: Any = None
        self._redis: Any = None
        self._reconcile: Any = None
        self._http: Any = None
        # Sources are made on worker threads: two threads asking at once get the same one.
        self._making = threading.Lock()

    def sql(self) -> Any:
        with self._making:
            return self._sql_made()

    def _sql_made(self) -> Any:
        if self._sql is None:
            from concertops.sources.sql import SqlSource

            url = self.profile.database_url
            self._sql = (
                SqlSource(url, self.timeout_s, shape=self.shape)
                if url
                else _Missing("sql", "no database_url configured")
            )
        return self._sql

    def redis(self) -> Any:
        with self._making:
            return self._redis_made()

    def _redis_made(self) -> Any:
        if self._redis is None:
            from concertops.sources.redis_queue import RedisSource

            url = self.profile.redis_url
            self._redis = (
                RedisSource(url, self.timeout_s, self.shape)
                if url
                else _Missing("redis", "no redis_url configured")
            )
        return self._redis

    def kafka(self) -> Any:
        with self._making:
            return self._kafka_made()

    def _kafka_made(self) -> Any:
        if self._kafka is None:
            from concertops.sources.kafka import KafkaSource

            servers = self.profile.kafka_bootstrap_servers
            self._kafka = (
                KafkaSource(servers, self.timeout_s)
                if servers
                else _Missing("kafka", "no kafka_bootstrap_servers configured")
            )
        return self._kafka

    def http(self) -> Any:
        if self._http is None:
            from concertops.sources.http_probe import HttpProbeSource

            # Its requests end before the check's deadline, whenever its thread got to start them.
            margin = min(HTTP_MARGIN_S, self.timeout_s * 0.1)
            self._http = HttpProbeSource(self.profile.backend_urls, self.deadline - margin)
        return self._http

    def reconcile(self, shape: Any) -> Any:
        """Payments against their topic: the database and the broker both."""
        with self._making:
            return self._reconcile_made(shape)

    def _reconcile_made(self, shape: Any) -> Any:
        if self._reconcile is None:
            from concertops.sources.reconcile import ReconcileSource

            url, servers = self.profile.database_url, self.profile.kafka_bootstrap_servers
            if not url:
                self._reconcile = _Missing("kafka", "no database_url configured")
            elif not servers:
                self._reconcile = _Missing("kafka", "no kafka_bootstrap_servers configured")
            else:
                self._reconcile = ReconcileSource(url, servers, shape, self.timeout_s)
        return self._reconcile

    def close(self) -> None:
        # Without the lock: a thread still making a source at the deadline must not hold the check up.
        for source in (self._sql, self._redis, self._reconcile):
            if source is not None and hasattr(source, "close"):
                source.close()


class _Missing:
    def __init__(self, source: str, why: str) -> None:
        self.source, self.why = source, why

    def observe(self, signal: Signal) -> Observation:
        return Observation(signal.name, self.source, signal.describe_query(), error=self.why)


def _made(source: Callable[[], Any], signal: Signal) -> Callable[[], Observation]:
    """Observe ``signal`` on the source ``source()`` makes (once, under the adapters' lock)."""
    return lambda: source().observe(signal)


def _bind(fn: Callable[..., Observation], *args: Any) -> Callable[[], Observation]:
    return lambda: fn(*args)


def _after(
    first: Future[Any], fn: Callable[[Signal], Observation], signal: Signal
) -> Callable[[], Observation]:
    def run() -> Observation:
        first.result()
        return fn(signal)

    return run


def _key(signal: Signal) -> tuple[str, str]:
    return signal.kind, signal.describe_query()
