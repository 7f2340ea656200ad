"""What every runbook shares: judging its page's signals and planning from its page's remediation steps.

A runbook module (``a1_lock_contention`` …) adds only what is its own, such as A-2's verdict."""

from __future__ import annotations

from collections.abc import Mapping

from concertops.model.evaluate import judge
from concertops.model.findings import Finding, Observation, Step
from concertops.model.page import Page
from concertops.model.status import Status, overall

FIRING = (Status.WARNING, Status.CRITICAL)


def evaluate(page: Page, observations: Mapping[str, Observation]) -> tuple[Finding, ...]:
    return tuple(judge(signal, observations[signal.name]) for signal in page.signals)


def plan(page: Page, findings: tuple[Finding, ...], enable: frozenset[str] = frozenset()) -> tuple[Step, ...]:
    """The page's steps whose triggering signals fire, in the page's order (the order to apply them).
    Optional steps are planned only when ``enable`` names them."""
    firing = {f.signal for f in findings if f.status in FIRING}
    return tuple(
        Step(
            id=spec.id,
            title=spec.title,
            action=spec.action,
            config=spec.config,
            expect=spec.expect,
            because=tuple(w for w in spec.when if w in firing),
        )
        for spec in page.remediation
        if firing.intersection(spec.when) and (not spec.optional or spec.id in enable)
    )


def status_of(findings: tuple[Finding, ...]) -> Status:
    return overall(f.status for f in findings)


def verdict(page: Page, findings: tuple[Finding, ...]) -> str:
    """One line for the engineer: what is wrong, or that nothing is."""
    status = status_of(findings)
    if status is Status.UNKNOWN:
        return "could not be judged: no signal was measured"
    firing = [f for f in findings if f.status in FIRING]
    if not firing:
        return "no sign of this incident"
    worst = max(firing, key=lambda f: f.status)
    return f"{page.title}: {worst.title.lower()} {worst.message}"
