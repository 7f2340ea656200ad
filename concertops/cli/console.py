"""The one place that builds rich consoles, tables, bars and markup, so output settings (width, colour) live
together and no other module imports rich (``render`` renders reports with them)."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.progress import Progress
    from rich.table import Table


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


def table(
    *columns: str,
    title: str | None = None,
    edge: bool = True,
    header: bool = True,
    plain: bool = False,
    fold: bool = False,
) -> Table:
    """A table to fill with ``add_row`` and print: ``plain`` without lines, ``fold`` wrapping long cells."""
    from rich.table import Table

    extra: dict[str, Any] = {"box": None, "padding": (0, 2)} if plain else {}
    if title:
        extra.update(title=title, title_justify="left")
    made = Table(show_edge=edge, show_header=header, **extra)
    for column in columns:
        made.add_column(column, overflow="fold" if fold else "ellipsis")
    return made


def markdown(text: str) -> Markdown:
    from rich.markdown import Markdown

    return Markdown(text)


def escape(text: str) -> str:
    """Text shown as it is: square brackets are not read as markup."""
    from rich.markup import escape as escaped

    return escaped(text)


def progress(on: Console, counted: bool) -> Progress:
    """A transient progress bar: with ``counted``, items done of the total, a ``rate`` field and the time
    spent; else a description, the bar and the time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not counted:
        return Progress(
            TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=on, transient=True
        )
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=on,
        transient=True,
    )
