"""What the global options decided, shared by every command of one invocation."""

from __future__ import annotations

import time
from dataclasses import dataclass
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

# When this invocation began (near enough: the command tree is imported first), so that `--timeout`
# bounds the whole command, start-up and output included, as a cron or NRPE time budget counts it.
STARTED = time.monotonic()
OUTPUT_MARGIN_S = 0.3  # judging, rendering and exiting
MIN_PROBE_S = 0.5


def remaining(timeout_s: float) -> float:
    """What is left of ``timeout_s`` for probing."""
    return max(MIN_PROBE_S, timeout_s - (time.monotonic() - STARTED) - OUTPUT_MARGIN_S)
