"""The service database as concertops opens it: UTC sessions on MySQL (the manual's ``NOW()``), bounded waits,
and on SQLite writers that queue behind each other instead of failing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from concertops.model.errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy as sa


def open_engine(url: str | None, timeout_s: float = 10.0, connections: int = 2) -> sa.Engine:
    import sqlalchemy as sa

    if not url:
        raise ConfigError(
            "no database configured", "set database_url in the profile or CONCERTOPS_DATABASE_URL"
        )
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30})
    connect_args: dict[str, Any] = {}
    if url.startswith("mysql"):
        wait = max(1, int(timeout_s))
        connect_args = {
            "connect_timeout": wait,
            "read_timeout": max(wait, 60),  # a batch may take a while; a hung server must not hang us
            "init_command": "SET time_zone = '+00:00'",
        }
    return sa.create_engine(
        url,
        pool_size=connections,
        max_overflow=0,
        pool_pre_ping=True,
        isolation_level="READ COMMITTED" if url.startswith("mysql") else None,
        connect_args=connect_args,
    )


def is_mysql(engine: sa.Engine) -> bool:
    return engine.dialect.name in ("mysql", "mariadb")
