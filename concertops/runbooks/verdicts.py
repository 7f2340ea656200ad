"""The small interface a runbook module's ``verdict`` sees: which of its signals fire."""

from __future__ import annotations

from collections.abc import Callable

# ``firing("signal")``: WARNING or CRITICAL; ``firing("signal:CRITICAL")``: that status only.
Firing = Callable[[str], bool]
