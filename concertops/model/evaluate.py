"""Judge observations against a signal's thresholds. Pure: no I/O, so every boundary is unit-tested."""

from __future__ import annotations

from dataclasses import replace

from concertops.model.findings import Finding, Observation
from concertops.model.signals import Signal
from concertops.model.status import Status


def with_ceiling(observed: Observation, bound: Signal) -> Observation:
    """``observed`` with the threshold its map-bound signal carries (a signal ``above_constant``)."""
    if not bound.above_constant or bound.warning is None:
        return observed
    return replace(observed, ceiling=bound.warning)


def judge(signal: Signal, observed: Observation) -> Finding:
    """OK / WARNING / CRITICAL by the thresholds; UNKNOWN when the value could not be measured.

    A threshold is crossed when the value is strictly beyond it (``> warning``, or ``< warning`` for a
    floor), as the manual writes its checks ("pool usage > 80%")."""
    if signal.above_constant and observed.ceiling is not None:
        constant = f"{signal.above_constant} {observed.ceiling:g}"
        signal = replace(signal, warning=observed.ceiling, title=f"{signal.title} ({constant})")
    if observed.not_applicable:
        reason = observed.not_applicable
        # A service map's "not available on <map>: why" is a sentence of its own.
        message = reason if reason.startswith("not available") else f"not applicable: {reason}"
        return _finding(signal, observed, Status.NOT_APPLICABLE, None, message)
    if observed.error is not None:
        return _finding(signal, observed, Status.UNKNOWN, None, f"not measured: {observed.error}")
    value = observed.value
    if value is None:
        # A rate or quantile over a window without traffic: nothing is wrong, and nothing to show.
        return _finding(signal, observed, Status.OK, None, "no samples in the window (no traffic)")
    shown = format_value(value, signal.unit)
    if observed.at_least:
        shown = f"at least {shown}"
    for status, threshold in ((Status.CRITICAL, signal.critical), (Status.WARNING, signal.warning)):
        # A lower bound can show a value above a ceiling, never one below a floor.
        decides = not (observed.at_least and signal.below)
        if threshold is not None and decides and _beyond(value, threshold, signal.below):
            word = "below" if signal.below else "above"
            message = f"{shown} is {word} {format_value(threshold, signal.unit)}"
            return _finding(signal, observed, status, threshold, message)
    if observed.at_least:  # short of every threshold, a lower bound says nothing of the real value
        return _finding(
            signal, observed, Status.UNKNOWN, None, f"not measured: cut short by the deadline at {shown}"
        )
    limit = signal.warning if signal.warning is not None else signal.critical
    return _finding(signal, observed, Status.OK, limit, f"{format_value(value, signal.unit)}")


def _beyond(value: float, threshold: float, below: bool) -> bool:
    return value < threshold if below else value > threshold


def _finding(
    signal: Signal, observed: Observation, status: Status, threshold: float | None, message: str
) -> Finding:
    # Evidence rows go with a firing signal, and with one only shown (no threshold), whose rows are the point.
    evidence = status in (Status.WARNING, Status.CRITICAL) or (
        signal.warning is None and signal.critical is None
    )
    if observed.note and status is not Status.NOT_APPLICABLE:
        message = f"{message}; {observed.note}"
    return Finding(
        signal=signal.name,
        title=signal.title,
        status=status,
        value=observed.value,
        threshold=threshold,
        source=observed.source,
        query=observed.query,
        message=message,
        unit=signal.unit,
        rows=observed.rows if evidence else (),
        history=observed.history,
        columns=observed.columns if evidence else (),
        warning=signal.warning,
        critical=signal.critical,
        below=signal.below,
        decisive=signal.decisive,
        note=observed.note,
        map_gap=observed.map_gap,
    )


def format_value(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "/s":
        # A trickle (one error in five minutes) must not print as "0.00/s is above 0.00/s".
        return f"{value:.2g}/s" if 0 < abs(value) < 0.01 else f"{value:.2f}/s"
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    return f"{text} {unit}".rstrip()
