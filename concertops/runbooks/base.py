"""What every runbook shares: judging its page's signals and planning from its page's remediation steps.

A runbook module (``a1_lock_contention`` …) adds only what is its own, such as A-2's verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from concertops.model.evaluate import judge
from concertops.model.findings import Finding, Observation, Step
from concertops.model.page import Page
from concertops.model.status import MEASURED, Status, not_ok_past_a_map_gap, runbook_status

FIRING = (Status.WARNING, Status.CRITICAL)


def evaluate(page: Page, observations: Mapping[str, Observation]) -> tuple[Finding, ...]:
    deciding = decisive(page)
    return tuple(
        dataclasses.replace(judge(signal, observations[signal.name]), decisive=signal.name in deciding)
        for signal in page.signals
    )


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


def decisive(page: Page) -> frozenset[str]:
    """The signals the page marks decisive; a page that marks none is judged by all of them."""
    marked = frozenset(s.name for s in page.signals if s.decisive)
    return marked or frozenset(s.name for s in page.signals)


def status_of(page: Page, findings: tuple[Finding, ...]) -> Status:
    deciding = decisive(page)
    status = runbook_status((f.status, f.signal in deciding) for f in findings)
    return not_ok_past_a_map_gap(status, ((f.status, f.signal in deciding, f.map_gap) for f in findings))


def unmeasured(page: Page, findings: tuple[Finding, ...]) -> list[Finding]:
    """The decisive signals that were not measured (UNKNOWN or not applicable here)."""
    deciding = decisive(page)
    return [f for f in findings if f.signal in deciding and f.status not in MEASURED]


def verdict(page: Page, findings: tuple[Finding, ...]) -> str:
    """One line for the engineer: what is wrong, that nothing is, or what could not be seen."""
    status = status_of(page, findings)
    if status is Status.UNKNOWN:
        blind = unmeasured(page, findings)
        # What failed to measure first; the signals this service cannot have are only counted after it,
        # unless they are all there is.
        failed = [f for f in blind if f.status is not Status.NOT_APPLICABLE] or blind
        absent = len(blind) - len(failed)
        also = f" (and {absent} not available on this service)" if absent else ""
        return "could not be judged: " + "; ".join(f"{f.signal} {f.message}" for f in failed) + also
    firing = [f for f in findings if f.status in FIRING]
    if not firing:
        return "no sign of this incident"
    worst = max(firing, key=lambda f: f.status)
    return f"{worst.title[:1].lower()}{worst.title[1:]} {worst.message}"  # the title is on the line already
