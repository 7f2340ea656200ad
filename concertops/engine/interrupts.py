"""Ctrl-C and SIGTERM as one interrupt, and the short stretches where one must wait.

A batch's commit and its audit row belong together: an interrupt that landed between them would leave a
batch changed in the database but missing from the audit. Inside ``deferred()`` an interrupt is held and
raised as soon as the stretch ends, so what the audit says is what the data shows.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


def _raise(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def terminate_like_ctrl_c() -> None:
    """SIGTERM (a stopped container, a killed cron job) stops a run as Ctrl-C does: audited, reported."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        raise KeyboardInterrupt
