"""What the audit and the apply lock both need to know of a run: the clock they stamp rows with, the lock's
name, and whether a run's process still lives. (Neither imports the other.)"""

from __future__ import annotations

import os
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def lock_name(runbook: str) -> str:
    """The name of a runbook's apply lock (MySQL ``GET_LOCK`` and the ``remediation_lock`` row)."""
    return f"concertops:{runbook}"


def holder_label(operator: str, run_id: str) -> str:
    """How a lock row names the run that holds it (read back by ``holds``)."""
    return f"{operator} (run {run_id[:8]})"


def holds(holder: str, run_id: str) -> bool:
    """Whether a lock row's ``holder`` is the run ``run_id``."""
    return f"(run {run_id[:8]})" in holder


def process_alive(pid: int) -> bool:
    """On this host: does process ``pid`` exist?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
