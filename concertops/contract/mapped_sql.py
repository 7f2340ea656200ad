"""A table of the service map for SQLAlchemy Core: reached by the runbooks' logical column names, sent in
the service's own (and quoted, locked and limited as its dialect wants)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from concertops.contract.service_map import ServiceMap
from concertops.model.errors import UsageError

# Logical columns that hold datetimes: typed, so SQLite stores and compares them as SQLAlchemy writes them.
_DATETIMES = frozenset(
    {"expires_at", "updated_at", "created_at", "published_at", "activated_at", "paid_at", "held_at"}
)


@dataclass(frozen=True)
class Named:
    table: sa.TableClause
    names: dict[str, str]  # logical → the service's column; "key" is the primary key

    @classmethod
    def of(cls, name: str, names: dict[str, str]) -> Named:
        columns = (
            sa.column(real, sa.DateTime if logical in _DATETIMES else None) for logical, real in names.items()
        )
        return cls(sa.table(name, *columns), names)

    def __getitem__(self, logical: str) -> sa.ColumnClause[Any]:
        return self.table.c[self.names[logical]]

    def name(self, logical: str) -> str:
        return self.names[logical]

    def row(self, values: dict[str, Any]) -> dict[str, Any]:
        """A row in logical names, under the service's column names."""
        return {self.names.get(k, k): v for k, v in values.items()}


def named(shape: ServiceMap, logical: str, *wanted: str, step: str = "") -> Named:
    """The map's ``tables.<logical>`` with its key and the ``wanted`` columns (more where the map has
    them); a missing one is a usage error naming the map field."""
    table = shape.table(logical)
    missing = [w for w in wanted if table is None or not table.column(w)]
    if table is None or missing:
        what = f"tables.{logical}" + (f" with {', '.join(missing)}" if table is not None else "")
        raise UsageError(
            f"{step + ': ' if step else ''}the service map {shape.name} has no {what}",
            f"add it to the map ({shape.source or 'its file'})",
        )
    return Named.of(table.table, {"key": table.key, **table.columns})


def flat_outbox(shape: ServiceMap) -> Named:
    """The map's outbox in the flat contract's columns (``concertops.contract.events.outbox_row``): its
    table and key from the map, the rest as the contract writes them."""
    outbox = shape.tables["outbox"]
    columns = ("topic", "aggregate_id", "payload", "status", "attempts", "last_error", "created_at")
    return Named.of(
        outbox.table, {"event_id": outbox.key, **{c: c for c in columns}, "published_at": "published_at"}
    )
