"""Black-box HTTP probes: a service that exports no metrics is still seen from outside.

A probe is a GET the service map names (``probes``), sent ``samples`` times to each of the profile's
``backend_urls``, one request at a time, taking the backends in turn. ``p95_s`` is the 95th percentile of
the response times (a request that timed out counts as its timeout); ``error_share`` the share of requests
answered 5xx or not at all (a backend that refuses the connection counts). The samples stop at the probe's
deadline: a request cut short by it is not a failure and, unless it is the first (which then took at
least that long), not a sample: a slow service yields fewer samples rather than none. A probe that reached
no backend at all measured nothing: its signals are UNKNOWN, as the cause may be our configuration rather
than the service. Both measures of one probe come from the same requests: the samples are taken once per
check.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line, redact_url

SOURCE = "http"


@dataclass(frozen=True)
class Samples:
    seconds: tuple[float, ...]
    failed: int  # 5xx, timed out, or the connection dropped
    unreachable: int  # refused before any answer
    first_error: str = ""

    @property
    def p95_s(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def error_share(self) -> float:
        """Requests answered 5xx or not at all, of every request sent (a backend down counts)."""
        return (self.failed + self.unreachable) / (len(self.seconds) + self.unreachable)


class HttpProbeSource:
    def __init__(self, base_urls: tuple[str, ...], deadline_s: float) -> None:
        self.base_urls, self.deadline_s = base_urls, deadline_s
        self._taken: dict[str, Samples | Exception] = {}
        self._lock = threading.Lock()

    def observe(self, signal: Signal) -> Observation:
        query = signal.describe_query()
        with self._lock:  # both measures of a probe read one set of requests
            found = self._taken.get(signal.path)
            if found is None:
                try:
                    found = self._sample(signal)
                except Exception as exc:
                    found = exc
                self._taken[signal.path] = found
        if isinstance(found, Exception):
            return Observation(signal.name, SOURCE, query, error=error_line(found))
        value = found.p95_s if signal.measure == "p95_s" else found.error_share
        return Observation(signal.name, SOURCE, query, value=value)

    def _sample(self, signal: Signal) -> Samples:
        import httpx

        if not self.base_urls:
            raise LookupError("no backend_urls configured (the service's HTTP base URLs)")
        timeout = signal.probe_timeout_s or self.deadline_s  # the map's: a request slower than this failed
        seconds: list[float] = []
        failed = unreachable = 0
        first = ""
        stop = time.monotonic() + self.deadline_s
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            # Round-robin: a slow first backend cannot use up the deadline before the others are asked.
            for base in [url for _ in range(signal.samples) for url in self.base_urls]:
                # A request never outlives the probe's deadline: the check's own deadline would
                # otherwise drop every sample taken so far.
                allowed = min(timeout, stop - time.monotonic())
                if allowed <= 0:
                    break
                started = time.monotonic()
                try:
                    status = client.get(base.rstrip("/") + signal.path, timeout=allowed).status_code
                    seconds.append(time.monotonic() - started)
                    if status >= 500:
                        failed += 1
                        first = first or f"{redact_url(base)} answered {status}"
                except httpx.ConnectError as exc:
                    unreachable += 1
                    first = first or f"{redact_url(base)}: {error_line(exc)}"
                except httpx.TimeoutException as exc:
                    if allowed < timeout:  # cut short by our deadline, not the service's timeout
                        if not seconds:
                            seconds.append(allowed)  # slow, not failed: it took at least this long
                        break
                    seconds.append(timeout)
                    failed += 1
                    first = first or f"{redact_url(base)}: {error_line(exc) or type(exc).__name__}"
                except httpx.HTTPError as exc:  # the connection dropped mid-answer
                    seconds.append(0.0)
                    failed += 1
                    first = first or f"{redact_url(base)}: {error_line(exc) or type(exc).__name__}"
        if not seconds:
            raise ConnectionError(f"no backend answered the probe ({first or 'no request sent'})")
        return Samples(tuple(seconds), failed, unreachable, first)
