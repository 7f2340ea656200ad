"""The small interface a runbook module's ``verdict`` sees: which of its signals fire."""

from __future__ import annotations

from collections.abc import Callable

Firing = Callable[[str], bool]
