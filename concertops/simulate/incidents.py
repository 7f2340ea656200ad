"""`concertops simulate incident ID`: drive the reference service into one incident of the manual, as the
manual tells it, and keep it going until the runbook's own detection sees it (or the time is up).

Each recipe causes the incident through the service's settings (only the incident's own, at the manual's
"current" legacy values), its HTTP API (users holding, paying, retrying), the contract's tables (a schedule
to book), and — for a Kafka outage — the broker this state directory started. Traffic that the detection
needs to see keeps running in the background until then.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from concertops.config import Profile
from concertops.engine.report import RunbookResult
from concertops.model.errors import UsageError
from concertops.simulate.recipe_kit import Recipe, Run, Say
from concertops.simulate.service import Service, SimulationError


def _recipes() -> dict[str, Recipe]:
    """Every runbook's recipe, found by id as the pages are (``recipes/b2.py`` for B-2): a runbook without
    one is left out here, and the registry test says so."""
    from concertops.runbooks.pages import RUNBOOK_IDS

    found: dict[str, Recipe] = {}
    for runbook_id in RUNBOOK_IDS:
        name = f"concertops.simulate.recipes.{runbook_id.replace('-', '').lower()}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        found[runbook_id] = module.RECIPE
    return found


RECIPES = _recipes()


@dataclass
class Outcome:
    incident: str
    actions: list[str]
    detected: bool
    seconds_to_detect: float | None
    seconds: float
    result: RunbookResult | None
    errors: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "title": RECIPES[self.incident].title,
            "actions": self.actions,
            "detected": self.detected,
            "seconds_to_detect": None if self.seconds_to_detect is None else round(self.seconds_to_detect, 1),
            "seconds": round(self.seconds, 1),
            "status": self.result.status.name if self.result else None,
            "findings": [f.as_json() for f in self.result.findings if f.status.name != "OK"]
            if self.result
            else [],
            "load_errors": self.errors,
        }


def recipe(incident: str) -> Recipe:
    """The recipe of ``incident``, written as the runbooks accept it (B-3, b3, B3)."""
    from concertops.runbooks.pages import normalise_id

    try:
        return RECIPES[normalise_id(incident)]
    except (ValueError, KeyError):
        raise UsageError(f"unknown incident '{incident}'", f"use one of: {', '.join(RECIPES)}") from None


def simulate(
    profile: Profile,
    incident: str,
    until_detected: bool,
    timeout_s: float,
    say: Say,
    waiting: Callable[[float, RunbookResult | None], None] = lambda _s, _r: None,
) -> Outcome:
    """Cause ``incident`` and watch its runbook's detection: stop at the first non-OK check when
    ``until_detected``, else keep the incident going for ``timeout_s``. Whatever happens, the background load
    stops and the incident's endings run (a stopped broker is started again)."""
    from concertops.engine.check import run_check
    from concertops.runbooks.registry import get

    chosen = recipe(incident)
    runbook = get(chosen.id)
    svc = Service(profile)
    run = Run(say)
    started = time.monotonic()
    detected_at: float | None = None
    last: RunbookResult | None = None
    try:
        chosen.cause(svc, run)
        deadline = started + timeout_s
        while True:
            elapsed = time.monotonic() - started
            last = run_check(profile, [runbook], timeout_s=5.0).runbooks[0]
            if detected_at is None and chosen.seen(last):
                detected_at = time.monotonic() - started
                if until_detected:
                    break
            if run.errors and not any(t.is_alive() for t in run.threads) and detected_at is None:
                raise SimulationError(f"the incident's load stopped: {run.errors[0]}")
            if time.monotonic() >= deadline:
                break
            waiting(elapsed, last)
            time.sleep(1.0)
    finally:
        run.finish()
        svc.close()
    return Outcome(
        chosen.id,
        run.actions,
        detected_at is not None,
        detected_at,
        time.monotonic() - started,
        last,
        run.errors,
    )
