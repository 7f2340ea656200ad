"""Metric signals through a Prometheus server (prometheus-api-client over its HTTP API)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "prometheus"
HISTORY = timedelta(minutes=30)


class PrometheusSource:
    def __init__(self, url: str, timeout_s: float) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        # No retries: a probe has its own deadline, and a down Prometheus must fail over to scraping fast.
        self.client = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_s)

    def ping(self) -> None:
        self.client.custom_query("vector(1)")

    def observe(self, signal: Signal, with_history: bool = False) -> Observation:
        query = signal.promql()
        try:
            value = _scalar(self.client.custom_query(query))
            history = self._history(query) if with_history else ()
        except Exception as exc:  # requests / API errors: this signal is UNKNOWN, the others go on
            return Observation(signal.name, SOURCE, query, error=error_line(exc))
        return Observation(signal.name, SOURCE, query, value=value, history=history)

    def _history(self, query: str) -> tuple[float, ...]:
        end = datetime.now(UTC)
        result = self.client.custom_query_range(query, start_time=end - HISTORY, end_time=end, step="60s")
        if not result:
            return ()
        return tuple(0.0 if _nan(v) else float(v) for _ts, v in result[0].get("values", []))


def _scalar(result: Any) -> float | None:
    """One number from an instant vector; None for NaN (a ratio or quantile without traffic).

    An empty vector means the metric does not exist there at all: that is an error, not a zero (counters
    are wrapped in ``or vector(0)`` by the signal, so only gauges and histograms can come back empty)."""
    if not result:
        raise LookupError("no series: is the service scraped, and does it export this metric?")
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


def _nan(value: Any) -> bool:
    number = float(value)
    return math.isnan(number) or math.isinf(number)
