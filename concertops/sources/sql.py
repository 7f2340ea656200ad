"""SQL signals through SQLAlchemy: one number per query, plus evidence rows when the signal is not OK."""

from __future__ import annotations

from typing import Any

from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "sql"
DETAIL_ROWS = 10


class SqlSource:
    def __init__(self, url: str, timeout_s: float, connections: int = 4) -> None:
        from concertops.sources.database import open_engine

        # The same sessions as remediation (UTC, READ COMMITTED), every wait bound by the probe's deadline:
        # a locked table must not hang a cron check.
        self.engine = open_engine(
            url, timeout_s, connections, read_timeout_s=timeout_s, pool_wait_s=timeout_s
        )

    def observe(self, signal: Signal) -> Observation:
        import sqlalchemy as sa

        query, detail = signal.query, signal.detail
        if self.engine.dialect.name == "sqlite":
            if signal.mysql_only:
                return Observation(
                    signal.name, SOURCE, query, not_applicable=f"{signal.mysql_only} on SQLite"
                )
            query, detail = signal.sqlite_query or query, signal.sqlite_detail or detail
        try:
            with self.engine.connect() as conn:
                row = conn.execute(sa.text(query)).first()
                if row is None:
                    # SHOW STATUS LIKE 'X' on a server without X: nothing was measured, not a zero.
                    return Observation(
                        signal.name, SOURCE, query, error="no row: the server has no such value"
                    )
                value = None if row[signal.column] is None else float(row[signal.column])
                rows: tuple[tuple[Any, ...], ...] = ()
                columns: tuple[str, ...] = ()
                if detail:
                    evidence = conn.execute(sa.text(detail))
                    columns = tuple(evidence.keys())
                    rows = tuple(tuple(r) for r in evidence.fetchmany(DETAIL_ROWS))
        except Exception as exc:  # SQLAlchemyError, a non-numeric column
            return Observation(signal.name, SOURCE, query, error=_describe(exc))
        if value is None:
            value = 0.0  # SUM over no row
        return Observation(signal.name, SOURCE, query, value=value, rows=rows, columns=columns)

    def close(self) -> None:
        self.engine.dispose()


def _describe(exc: Exception) -> str:
    """The driver's own error (``orig``) rather than SQLAlchemy's wrapper text, named by its type."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {error_line(orig)}"
