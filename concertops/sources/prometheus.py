"""Prometheus, through one client (prometheus-api-client over its HTTP API) that every part of concertops
reuses: metric signals, the settings version instances applied, the window of dropped events, the firing
alerts for triage, and doctor's check."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "prometheus"
HISTORY = timedelta(minutes=30)

_CLIENTS: dict[tuple[str, float], PrometheusSource] = {}
_CLIENTS_LOCK = threading.Lock()


def prometheus(url: str, timeout_s: float) -> PrometheusSource:
    """The process's client for ``url`` (one connection pool, kept for the process's life)."""
    key = (url.rstrip("/"), float(timeout_s))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = PrometheusSource(*key)
        return _CLIENTS[key]


class PrometheusSource:
    def __init__(self, url: str, timeout_s: float) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        # No retries: a probe has its own deadline, and a down Prometheus must fail over to scraping fast.
        self.client = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_s)

    def ping(self, timeout_s: float | None = None) -> None:
        answer = self.client._session.get(
            f"{self.url}/api/v1/query", params={"query": "vector(1)"}, timeout=timeout_s or self.timeout_s
        )
        answer.raise_for_status()

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.client.custom_query(expr)
        return result

    def query_range(self, expr: str, start: datetime, end: datetime, step: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.client.custom_query_range(
            expr, start_time=start, end_time=end, step=step
        )
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus has now (pending and firing), as its API returns them."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def version(self) -> str:
        return str(self._get("/api/v1/status/buildinfo").get("version", "?"))

    def observe(self, signal: Signal, with_history: bool = False) -> Observation:
        query = signal.promql()
        try:
            value = _scalar(self.query(query))
            history = self._history(query) if with_history else ()
        except Exception as exc:  # requests / API errors: this signal is UNKNOWN, the others go on
            return Observation(signal.name, SOURCE, query, error=error_line(exc))
        return Observation(signal.name, SOURCE, query, value=value, history=history)

    def _get(self, path: str) -> dict[str, Any]:
        # The client's own session (headers, TLS settings, no retries) for the endpoints it has no method for.
        answer = self.client._session.get(f"{self.url}{path}", timeout=self.timeout_s)
        answer.raise_for_status()
        data = answer.json().get("data")
        if not isinstance(data, dict):
            raise ValueError(f"unexpected answer from {path}")
        return data

    def _history(self, query: str) -> tuple[float, ...]:
        end = datetime.now(UTC)
        result = self.query_range(query, end - HISTORY, end, "60s")
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
