"""Black-box HTTP probes: a service that exports no metrics is still seen from outside.

A probe is a GET the service map names (``probes``), sent ``samples`` times to each of the profile's
``backend_urls``, one request at a time, taking the backends in turn. ``p95_s`` is the 95th percentile of
the response times (a request that timed out counts as its timeout); ``error_share`` the share of requests
answered 5xx or not at all (a backend that refuses the connection counts).

The samples stop at the probe's deadline, an instant on the monotonic clock that lies inside the check's
own: a request never outlives it. A request cut short by it is not a failure and, unless nothing else was
measured (then it took at least that long), not a sample: a slow service yields fewer samples rather than
none. Should the sampling thread itself be late (a loaded machine), the check reads what the probe has
measured so far (``so_far``), a request still waiting included: a service too slow to answer is measured
as slow, never as "timed out". A probe that reached no backend at all measured nothing: its signals are
UNKNOWN, as the cause may be our configuration rather than the service. Both measures of one probe come
from the same requests: the samples are taken once per check.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
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
    ended: bool = True  # False: no request ended, ``seconds`` holds only how long one has waited so far

    @property
    def p95_s(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def error_share(self) -> float:
        """Requests answered 5xx or not at all, of every request sent (a backend down counts)."""
        return (self.failed + self.unreachable) / (len(self.seconds) + self.unreachable)


class Tally:
    """The requests of one probe as they are answered; safe to read from another thread at any time."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s, self.clock = timeout_s, clock
        self._lock = threading.Lock()
        self._seconds: list[float] = []
        self._failed = self._unreachable = 0
        self._first = ""
        self._waiting_since: float | None = None
        self._cut_only = False  # the only sample is a request our deadline cut short

    def sent(self) -> float:
        with self._lock:
            self._waiting_since = self.clock()
            return self._waiting_since

    def answered(self, status: int, where: str) -> None:
        with self._lock:
            self._seconds.append(self._took())
            if status >= 500:
                self._failed += 1
                self._first = self._first or f"{where} answered {status}"

    def refused(self, why: str) -> None:
        with self._lock:
            self._waiting_since = None
            self._unreachable += 1
            self._first = self._first or why

    def failed(self, why: str, took: float | None = None) -> None:
        """Timed out by the service's timeout (``took`` = that timeout), or dropped mid-answer (0 s)."""
        with self._lock:
            self._waiting_since = None
            self._seconds.append(took if took is not None else 0.0)
            self._failed += 1
            self._first = self._first or why

    def cut_short(self, allowed: float) -> None:
        """Our deadline, not the service, ended the request after ``allowed`` seconds without an answer: a
        sample only when it is all we have."""
        with self._lock:
            self._waiting_since = None
            if not self._seconds:
                self._seconds.append(allowed)
                self._cut_only = True

    def samples(self) -> Samples | None:
        """What was measured up to now; a request still waiting counts as in ``cut_short``."""
        with self._lock:
            seconds, failed = list(self._seconds), self._failed
            ended = bool(seconds) and not self._cut_only
            if self._waiting_since is not None:
                waited = self.clock() - self._waiting_since
                if waited >= self.timeout_s:  # past the service's own timeout: it failed
                    seconds, failed, ended = [*seconds, self.timeout_s], failed + 1, True
                elif not seconds:
                    seconds.append(waited)
            if not seconds:
                return None
            return Samples(tuple(seconds), failed, self._unreachable, self._first, ended)

    @property
    def first_error(self) -> str:
        with self._lock:
            return self._first

    def _took(self) -> float:
        started, self._waiting_since = self._waiting_since, None
        return self.clock() - started if started is not None else 0.0


class HttpProbeSource:
    def __init__(self, base_urls: tuple[str, ...], deadline: float) -> None:
        """``deadline``: the instant (``time.monotonic()``) by which every request has ended."""
        self.base_urls, self.deadline = base_urls, deadline
        self._taken: dict[str, Samples | Exception] = {}
        self._tallies: dict[str, Tally] = {}
        self._lock = threading.Lock()

    def observe(self, signal: Signal) -> Observation:
        with self._lock:  # both measures of a probe read one set of requests
            found = self._taken.get(signal.path)
            if found is None:
                try:
                    found = self._sample(signal)
                except Exception as exc:
                    found = exc
                self._taken[signal.path] = found
        return self._observation(signal, found)

    def so_far(self, signal: Signal) -> Observation | None:
        """The measurement up to this instant, for a check whose deadline came before the probe ended."""
        tally = self._tallies.get(signal.path)
        taken = tally.samples() if tally is not None else None
        return self._observation(signal, taken) if taken is not None else None

    def _observation(self, signal: Signal, found: Samples | Exception) -> Observation:
        query = signal.describe_query()
        if isinstance(found, Exception):
            return Observation(signal.name, SOURCE, query, error=error_line(found))
        if signal.measure == "p95_s":
            return Observation(signal.name, SOURCE, query, value=found.p95_s, at_least=not found.ended)
        if not found.ended and not found.unreachable:
            why = f"no request ended in the {found.seconds[0]:.1f} s it was given (slow: see its p95)"
            return Observation(signal.name, SOURCE, query, error=why)
        return Observation(signal.name, SOURCE, query, value=found.error_share)

    def _sample(self, signal: Signal) -> Samples:
        if not self.base_urls:
            raise LookupError("no backend_urls configured (the service's HTTP base URLs)")
        timeout = signal.probe_timeout_s or max(0.1, self.deadline - time.monotonic())
        tally = self._tallies.setdefault(signal.path, Tally(timeout))
        import httpx

        # Certificates are loaded only for https backends: the load costs time the probe measures.
        tls = any(url.lower().startswith("https:") for url in self.base_urls)
        with httpx.Client(timeout=timeout, follow_redirects=False, verify=tls) as client:
            # Round-robin: a slow first backend cannot use up the deadline before the others are asked.
            for base in [url for _ in range(signal.samples) for url in self.base_urls]:
                allowed = min(timeout, self.deadline - time.monotonic())
                if allowed <= 0:
                    break
                where = redact_url(base)
                tally.sent()
                try:
                    status = client.get(base.rstrip("/") + signal.path, timeout=allowed).status_code
                    tally.answered(status, where)
                except httpx.ConnectError as exc:
                    tally.refused(f"{where}: {error_line(exc)}")
                except httpx.TimeoutException as exc:
                    if allowed < timeout:  # cut short by our deadline, not the service's timeout
                        tally.cut_short(allowed)
                        break
                    tally.failed(f"{where}: {error_line(exc) or type(exc).__name__}", took=timeout)
                except httpx.HTTPError as exc:  # the connection dropped mid-answer
                    tally.failed(f"{where}: {error_line(exc) or type(exc).__name__}")
        taken = tally.samples()
        if taken is None:
            raise ConnectionError(f"no backend answered the probe ({tally.first_error or 'no request sent'})")
        return taken
