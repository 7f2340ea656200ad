"""``check``: probe every signal of the chosen runbooks at once, then judge each runbook (pure)."""

from __future__ import annotations

import time

from concertops.config import Profile
from concertops.engine.probe import probe
from concertops.engine.report import Report, RunbookResult
from concertops.runbooks.registry import Runbook


def run_check(
    profile: Profile,
    runbooks: list[Runbook],
    timeout_s: float = 5.0,
    history: bool = False,
    window: str | None = None,
    enable: frozenset[str] = frozenset(),
    since: float | None = None,
) -> Report:
    """Probe and judge; ``window`` shortens every rate and quantile window (verification after a fix wants
    the last seconds, not the last minutes that still hold the incident); ``enable`` names optional steps;
    ``since`` is the ``time.monotonic()`` instant the command began, which the report's duration counts
    from (default: now), as the budget it kept to did."""
    started = time.monotonic()
    if window is not None:
        runbooks = [rb.with_window(window) for rb in runbooks]
    signals = [s for rb in runbooks for s in rb.page.signals]
    wanted = frozenset(rb.page.main_signal.name for rb in runbooks) if history else frozenset()
    probed = probe(profile, signals, timeout_s, history_for=wanted)
    results = []
    for rb in runbooks:
        observations = {s.name: probed.for_signal(s) for s in rb.page.signals}
        judged = rb.judge(observations, enable)
        results.append(
            RunbookResult(
                id=rb.id,
                title=rb.page.title,
                status=judged.status,
                verdict=judged.verdict,
                findings=judged.findings,
                plan=judged.plan,
                duration_s=time.monotonic() - started,
            )
        )
    return Report(
        tuple(results),
        probed.sources,
        probed.mode or "no metric signals",
        time.monotonic() - (started if since is None else since),
    )
