"""The small interface a runbook module's ``verdict`` sees: which of its signals fire, and what a shown
signal measured."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from concertops.model.findings import Finding
from concertops.model.status import Status

# ``firing("signal")``: WARNING or CRITICAL; ``firing("signal:CRITICAL")``: that status only.
Firing = Callable[[str], bool]

_FIRING = (Status.WARNING, Status.CRITICAL)


class Seen:
    """A runbook's findings as its verdict reads them; calling it is ``Firing``."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self._by_name = {f.signal: f for f in findings}

    def __call__(self, name: str) -> bool:
        signal, _, status = name.partition(":")
        found = self._by_name.get(signal)
        if found is None or found.status not in _FIRING:
            return False
        return not status or found.status.name == status

    def value(self, name: str) -> float | None:
        """What was measured (None when it was not)."""
        found = self._by_name.get(name)
        return found.value if found is not None and found.status not in (Status.UNKNOWN,) else None

    def note(self, name: str) -> str:
        """What the source said with the value (a lost topic, the zone it judged in)."""
        found = self._by_name.get(name)
        return found.note if found is not None else ""

    def rows(self, name: str) -> tuple[tuple[Any, ...], ...]:
        found = self._by_name.get(name)
        return found.rows if found is not None else ()


def lost_topic(seen: Seen, signal: str) -> str:
    """The verdict when payments' topic is gone from a broker that answered (concertops.sources.reconcile)."""
    note = seen.note(signal)
    if not seen(signal) or "does not exist on the broker" not in note:
        return ""
    count = seen.value(signal)
    shown = f"{count:.0f} " if count is not None else ""
    topic = note.split()[1] if note.startswith("topic ") else "the topic"
    return (
        f"{shown}SUCCESS payments have no event: {topic} does not exist on the broker (lost by the broker, "
        "or the map names the wrong topic: `concertops doctor`); `--apply --create-topic` creates it and "
        "publishes exactly those"
    )
