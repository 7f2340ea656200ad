"""What the global options decided, shared by every command of one invocation."""

from __future__ import annotations

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

            self._loaded = load_profile(self.config, self.profile)
        return self._loaded


OPTIONS = Options()
