"""Settings as operations: validated changes with a reason, history, rollback to any version, presets.

The values live in the service's database (``runtime_setting``); the contract's store does the writing, so
the backend and concertops agree on names, types and ranges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from concertops.contract import settings as specs
from concertops.contract import settings_store
from concertops.contract.schema import runtime_setting_history
from concertops.model.errors import UsageError
from concertops.redact import redact_text


@dataclass(frozen=True)
class Written:
    version: int
    changes: list[settings_store.Change]


def current(engine: sa.Engine) -> tuple[dict[str, specs.Value], int]:
    with engine.connect() as conn:
        return settings_store.current(conn)


def parse_assignments(items: list[str]) -> dict[str, specs.Value]:
    """``["db_pool_size=30", "event_activation=on"]`` → validated values, or a UsageError naming the fix."""
    parsed: dict[str, specs.Value] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"'{item}' is not NAME=VALUE", "e.g. concertops settings set db_pool_size=30")
        spec = specs.spec(name.strip())
        parsed[spec.name] = spec.parse(raw)
    return parsed


def preview(engine: sa.Engine, changes: Mapping[str, specs.Value]) -> list[settings_store.Change]:
    """What ``write`` would change, without writing (a dry run reads, it never writes)."""
    values, _version = current(engine)
    return [
        settings_store.Change(name, specs.BY_NAME[name].render(values[name]), specs.BY_NAME[name].render(v))
        for name, v in changes.items()
        if values[name] != v
    ]


def write(engine: sa.Engine, changes: Mapping[str, Any], operator: str, reason: str) -> Written:
    with engine.begin() as conn:
        # Free text is redacted before it is stored, not only when it is printed.
        version, done = settings_store.write(conn, changes, operator, redact_text(reason))
    return Written(version, done)


def history(engine: sa.Engine, name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    table = runtime_setting_history
    stmt = sa.select(table).order_by(table.c.history_id.desc()).limit(limit)
    if name:
        stmt = stmt.where(table.c.name == specs.spec(name).name)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)][::-1]


def values_at(engine: sa.Engine, version: int) -> dict[str, specs.Value]:
    """The settings in force right after ``version`` was written (defaults for names not yet stored)."""
    table = runtime_setting_history
    with engine.connect() as conn:
        known = conn.execute(sa.select(sa.func.max(table.c.version))).scalar() or 0
        if version < 0 or version > known:
            raise UsageError(
                f"there is no settings version {version}",
                f"pick one of 0…{known} (concertops settings history)",
            )
        rows = conn.execute(
            sa.select(table.c.name, table.c.new_value)
            .where(table.c.version <= version)
            .order_by(table.c.history_id)
        ).all()
    return specs.resolve({r.name: r.new_value for r in rows})


def rollback_changes(engine: sa.Engine, version: int) -> dict[str, specs.Value]:
    """The changes that bring every setting back to its value at ``version``."""
    target = values_at(engine, version)
    values, _now = current(engine)
    return {name: value for name, value in target.items() if values[name] != value}
