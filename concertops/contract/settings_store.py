"""Reading and writing runtime settings in the database, every change kept in the history.

A change bumps one global version; each instance exports the version it has applied, which is how a
change is verified on every instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from concertops.contract import settings as specs
from concertops.contract.schema import runtime_setting, runtime_setting_history


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None
    new: str


def current(conn: sa.Connection) -> tuple[dict[str, specs.Value], int]:
    """The values in force (stored over defaults) and the current version."""
    rows = conn.execute(
        sa.select(runtime_setting.c.name, runtime_setting.c.value, runtime_setting.c.version)
    ).all()
    return specs.resolve({r.name: r.value for r in rows}), max((r.version for r in rows), default=0)


def write(
    conn: sa.Connection, changes: Mapping[str, object], operator: str, reason: str
) -> tuple[int, list[Change]]:
    """Validate and store ``changes`` in the caller's transaction; returns (new version, what changed).

    Values equal to those in force are not written; when nothing changes the version stays as it was.
    """
    parsed = {name: specs.spec(name).parse(value) for name, value in changes.items()}
    values, version = current(conn)
    stored = {
        r.name: r.value for r in conn.execute(sa.select(runtime_setting.c.name, runtime_setting.c.value))
    }
    todo = [(name, value) for name, value in parsed.items() if values[name] != value or name not in stored]
    if not todo:
        return version, []
    last_history = conn.execute(sa.select(sa.func.max(runtime_setting_history.c.version))).scalar() or 0
    new_version = max(version, last_history) + 1
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    done: list[Change] = []
    for name, value in todo:
        text = specs.BY_NAME[name].render(value)
        old = stored.get(name)
        if old is None:
            conn.execute(
                runtime_setting.insert().values(
                    name=name, value=text, version=new_version, updated_at=now, updated_by=operator
                )
            )
        else:
            conn.execute(
                runtime_setting.update()
                .where(runtime_setting.c.name == name)
                .values(value=text, version=new_version, updated_at=now, updated_by=operator)
            )
        conn.execute(
            runtime_setting_history.insert().values(
                version=new_version,
                name=name,
                old_value=old,
                new_value=text,
                operator=operator,
                reason=reason,
                changed_at=now,
            )
        )
        if values[name] != value:
            done.append(Change(name, specs.BY_NAME[name].render(values[name]), text))
    # Every row moves to the new version, so "the version in force" is one number.
    conn.execute(runtime_setting.update().values(version=new_version))
    return new_version, done


def apply_preset(conn: sa.Connection, preset: str, operator: str, reason: str) -> tuple[int, list[Change]]:
    if preset not in specs.PRESETS:
        from concertops.model.errors import UsageError

        raise UsageError(f"unknown preset '{preset}'", f"use one of: {', '.join(specs.PRESETS)}")
    return write(conn, specs.PRESETS[preset], operator, reason)
