"""The one place that builds rich consoles, so output settings (width, colour) live together."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def out() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=_width())


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, width=_width())


def _width() -> int | None:
    columns = os.environ.get("COLUMNS")
    return int(columns) if columns and columns.isdigit() else None
