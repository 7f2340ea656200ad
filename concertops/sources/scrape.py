"""Metric signals from the service's own ``/metrics`` endpoints, when no Prometheus is configured or it does
not answer. Rates and quantiles come from two scrapes ``interval_s`` apart, so their window is that interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from concertops.model.findings import Observation
from concertops.model.signals import METRIC_KINDS, Matcher, Series, Signal
from concertops.redact import redact_text, redact_url
from concertops.sources.threads import map_within

Sample = tuple[str, dict[str, str], float]


@dataclass(frozen=True)
class Snapshot:
    at: float
    instances: tuple[tuple[Sample, ...], ...]  # one tuple of samples per endpoint that answered


class ScrapeSource:
    def __init__(self, urls: Iterable[str], timeout_s: float, interval_s: float = 1.0) -> None:
        self.urls = tuple(urls)
        self.timeout_s, self.interval_s = timeout_s, interval_s
        self.before: Snapshot | None = None
        self.after: Snapshot | None = None
        self.failed: list[str] = []

    @property
    def label(self) -> str:
        answered = len(self.urls) - len(self.failed)
        return f"direct scrape ({answered}/{len(self.urls)} endpoints, rates over {self.interval_s:g} s)"

    def collect(self, signals: Iterable[Signal]) -> None:
        """Scrape once, and once more after ``interval_s`` if any signal needs a rate."""
        wanted = [s for s in signals if s.kind in METRIC_KINDS]
        if not wanted or not self.urls:
            return
        self.before = self._scrape()
        if self.before.instances and any(_needs_rate(s) for s in wanted):
            time.sleep(self.interval_s)
            self.after = self._scrape()

    def observe(self, signal: Signal) -> Observation:
        query = signal.promql()
        if not self.urls:
            return Observation(signal.name, "direct scrape", query, error="no metrics_urls configured")
        if self.before is None or not self.before.instances:
            why = "; ".join(self.failed) or "nothing scraped"
            return Observation(signal.name, "direct scrape", query, error=f"no endpoint answered ({why})")
        try:
            value = self._value(signal)
        except LookupError as exc:
            return Observation(signal.name, self.label, query, error=str(exc))
        return Observation(signal.name, self.label, query, value=value)

    # -- computing ---------------------------------------------------------------------------------------
    def _value(self, signal: Signal) -> float | None:
        assert signal.series is not None and self.before is not None
        if signal.kind == "quantile":
            return self._quantile(signal.series, signal.quantile)
        numerator = self._series(signal.series)
        if signal.kind != "ratio":
            return numerator
        assert signal.denominator is not None
        denominator = self._series(signal.denominator)
        if numerator is None or not denominator:
            return None  # nothing to divide: no traffic in the window
        return numerator / denominator

    def _series(self, series: Series) -> float | None:
        assert self.before is not None
        if series.kind == "gauge":
            per_instance = [
                _sum(samples, series.metric, series.matchers) for samples in self.before.instances
            ]
            present = [v for v in per_instance if v is not None]
            if not present:
                raise LookupError(f"no scraped endpoint exports {series.metric}")
            if series.agg == "max":
                return max(present)
            return min(present) if series.agg == "min" else sum(present)
        return self._rate(series.metric, series.matchers)

    def _rate(self, metric: str, matchers: tuple[Matcher, ...], le: str | None = None) -> float:
        assert self.before is not None and self.after is not None
        total = 0.0
        for old, new in zip(self.before.instances, self.after.instances, strict=False):
            a = _sum(old, metric, matchers, le) or 0.0
            b = _sum(new, metric, matchers, le) or 0.0
            total += b - a if b >= a else b  # a counter reset: the instance restarted in between
        return total / (self.after.at - self.before.at)

    def _quantile(self, series: Series, q: float) -> float | None:
        assert self.before is not None and self.after is not None
        bounds = sorted(
            {s[1]["le"] for inst in self.after.instances for s in inst if s[0] == f"{series.metric}_bucket"},
            key=float,
        )
        if not bounds:
            raise LookupError(f"no scraped endpoint exports {series.metric}_bucket")
        counts = [(float(le), self._rate(f"{series.metric}_bucket", series.matchers, le)) for le in bounds]
        return histogram_quantile(q, counts)

    # -- scraping ------------------------------------------------------------------------------------------
    def _scrape(self) -> Snapshot:
        late: tuple[tuple[Sample, ...], str] = ((), f"no answer within {self.timeout_s:g} s")
        # A little over the fetch's own timeout: httpx ends a silent endpoint itself, this only backs it up.
        results = map_within(self._fetch, self.urls, self.timeout_s + 0.5, late)
        self.failed = [error for _samples, error in results if error]
        return Snapshot(time.monotonic(), tuple(samples for samples, error in results if not error))

    def _fetch(self, url: str) -> tuple[tuple[Sample, ...], str]:
        try:
            return fetch_samples(url, self.timeout_s), ""
        except Exception as exc:  # httpx errors, a page that is not Prometheus text
            return (), redact_text(f"{redact_url(url)}: {type(exc).__name__}")


def fetch_samples(url: str, timeout_s: float) -> tuple[Sample, ...]:
    """Every sample of one ``/metrics`` page; raises httpx.HTTPError (or ValueError for a page that is not
    Prometheus text)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=timeout_s).raise_for_status().text
    return tuple(
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )


def _needs_rate(signal: Signal) -> bool:
    series = [signal.series, signal.denominator]
    return signal.kind == "quantile" or any(s is not None and s.kind == "rate" for s in series)


def _sum(
    samples: Iterable[Sample], metric: str, matchers: tuple[Matcher, ...], le: str | None = None
) -> float | None:
    found, total = False, 0.0
    for name, labels, value in samples:
        if name != metric or (le is not None and labels.get("le") != le):
            continue
        if all(m.matches(labels) for m in matchers):
            found, total = True, total + value
    return total if found else None


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative (upper bound, count) buckets: linear interpolation
    inside the bucket that holds the rank; the highest finite bound when the rank falls in +Inf."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower
