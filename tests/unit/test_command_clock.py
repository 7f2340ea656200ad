"""`--timeout` counts from the process's start: the clock every probing command's budget is cut from."""

from __future__ import annotations

import time

from concertops.cli import state


def test_the_process_began_before_its_modules_were_imported() -> None:
    # Read from /proc where there is one; else the first import of the clock, which is no earlier either.
    assert state.process_start() <= state.STARTED


def test_remaining_is_cut_from_the_instant_the_invocation_began() -> None:
    before = state.began()
    try:
        state.begin(time.monotonic() - 10.0)  # start-up already took all of a 5 s budget
        assert state.remaining(5.0) == state.MIN_PROBE_S
        state.begin(time.monotonic())
        assert state.MIN_PROBE_S < state.remaining(5.0) <= 5.0 - state.OUTPUT_MARGIN_S
    finally:
        state.begin(before)
