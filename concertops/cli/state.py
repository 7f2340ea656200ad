"""What the global options decided, shared by every command of one invocation."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concertops.config import Profile


@dataclass
class Options:
    config: str | None = None
    profile: str | None = None
    debug: bool = False
    _loaded: Profile | None = None

    def load_profile(self) -> Profile:
        if self._loaded is None:
            from concertops.config import load_profile
            from concertops.sources.database import use_tls

            self._loaded = load_profile(self.config, self.profile)
            use_tls(self._loaded.tls)  # every MySQL connection this process opens
        return self._loaded


OPTIONS = Options()

# When this invocation began: the module's import until the entry point says better (``begin``).
STARTED = time.monotonic()
_began = [STARTED]


OUTPUT_MARGIN_S = 0.3  # judging, rendering and exiting
MIN_PROBE_S = 0.5


def process_start() -> float:
    """The ``time.monotonic()`` instant this process was started (Linux: from /proc), so that `--timeout`
    counts the interpreter's start-up and the imports as a cron or NRPE time budget counts them."""
    now = time.monotonic()
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux: from the first import on
        return STARTED
    # A process older than its imports by more than a minute is not a command line that just began.
    return now - age if 0 <= age < now - STARTED + 60 else STARTED


def begin(instant: float) -> None:
    """Start this invocation's clock at ``instant`` (the process's start, or an in-process call's)."""
    _began[0] = instant


def began() -> float:
    return _began[0]


def remaining(timeout_s: float) -> float:
    """What is left of ``timeout_s`` for probing."""
    return max(MIN_PROBE_S, timeout_s - (time.monotonic() - began()) - OUTPUT_MARGIN_S)
