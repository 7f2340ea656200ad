"""Black-box HTTP probes: a service that exports no metrics is still seen from outside.

A probe is a GET the service map names (``probes``), sent ``samples`` times to each of the profile's
``backend_urls``, one request at a time, taking the backends in turn. ``p95_s`` is the 95th percentile of
the response times (a request that timed out counts as its timeout); ``error_share`` the share of requests
answered 5xx or not at all by the backends that are up; ``backends_down`` the share of backends that
refused the connection on every request (a process that is gone: WARNING for some, CRITICAL for all).

The samples stop at the probe's deadline, an instant on the monotonic clock that lies inside the check's
own: a request never outlives it. A request cut short by it is not a failure and, unless nothing else was
measured (then it took at least that long), not a sample: a slow service yields fewer samples rather than
none. Should the sampling thread itself be late (a loaded machine), the check reads what the probe has
measured so far (``so_far``), a request still waiting included: a service too slow to answer is measured
as slow, never as "timed out". A probe that reached no backend at all measured nothing: its signals are
UNKNOWN, as the cause may be our configuration rather than the service (a name that does not resolve),
unless every backend refused every connection: a service that is down is a finding. Both measures of one
probe come from the same requests: the samples are taken once per check.
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
    unreachable: int  # refused (or not resolved) before any answer
    first_error: str = ""
    ended: bool = True  # False: no request ended, ``seconds`` holds only how long one has waited so far
    backends: int = 0  # asked at least once
    down: int = 0  # of them, refused the connection on every request
    down_requests: int = 0  # the requests those refused (in ``unreachable``)

    @property
    def p95_s(self) -> float:
        if not self.seconds:
            raise ValueError("no backend answered")
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def error_share(self) -> float:
        """Requests answered 5xx or not at all, of every request sent to a backend that is up (the ones
        down are ``backends_down``); 1.0 when every backend is down."""
        unreachable = self.unreachable - self.down_requests
        sent = len(self.seconds) + unreachable
        return (self.failed + unreachable) / sent if sent else 1.0

    @property
    def backends_down(self) -> float:
        return self.down / self.backends if self.backends else 0.0


class Tally:
    """The requests of one probe as they are answered; safe to read from another thread at any time."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s, self.clock = timeout_s, clock
        self._lock = threading.Lock()
        self._seconds: list[float] = []
        self._failed = self._unreachable = 0
        self._asked: dict[str, int] = {}  # per backend: requests sent, and of them refused
        self._refused_by: dict[str, int] = {}
        self._first = ""
        self._waiting_since: float | None = None
        self._cut_only = False  # the only sample is a request our deadline cut short

    def sent(self, backend: str = "") -> float:
        with self._lock:
            self._asked[backend] = self._asked.get(backend, 0) + 1
            self._waiting_since = self.clock()
            return self._waiting_since

    def answered(self, status: int, where: str) -> None:
        with self._lock:
            self._seconds.append(self._took())
            if status >= 500:
                self._failed += 1
                self._first = self._first or f"{where} answered {status}"

    def refused(self, why: str, backend: str = "", down: bool = True) -> None:
        """No connection: ``down`` when the host refused it (nothing listens), not when the name did not
        resolve (that may be our configuration)."""
        with self._lock:
            self._waiting_since = None
            self._unreachable += 1
            if down:
                self._refused_by[backend] = self._refused_by.get(backend, 0) + 1
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
            down = [b for b, sent in self._asked.items() if self._refused_by.get(b, 0) == sent]
            counts = {
                "backends": len(self._asked),
                "down": len(down),
                "down_requests": sum(self._refused_by[b] for b in down),
            }
            if not seconds:
                if not self._asked or len(down) < len(self._asked):
                    return None
                return Samples((), 0, self._unreachable, self._first, True, **counts)
            return Samples(tuple(seconds), failed, self._unreachable, self._first, ended, **counts)

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
        if found.backends and found.down == found.backends:
            if signal.measure == "p95_s":
                why = f"no backend answered: every one refused the connection ({found.first_error})"
                # The service is not where the profile says: nothing of it can read OK meanwhile.
                return Observation(signal.name, SOURCE, query, error=why, map_gap=True)
            value = found.backends_down if signal.measure == "backends_down" else found.error_share
            return Observation(signal.name, SOURCE, query, value=value)
        if signal.measure == "backends_down":
            return Observation(signal.name, SOURCE, query, value=found.backends_down)
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
                tally.sent(where)
                try:
                    status = client.get(base.rstrip("/") + signal.path, timeout=allowed).status_code
                    tally.answered(status, where)
                except httpx.ConnectError as exc:
                    tally.refused(f"{where}: {error_line(exc)}", where, down=_refused(exc))
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


def _refused(exc: BaseException) -> bool:
    """The host answered that nothing listens (not a name that failed to resolve, not a route)."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx → httpcore → the socket's own error; a chain is never longer
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
