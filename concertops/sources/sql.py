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
        self._privileges: frozenset[str] | None = None

    def observe(self, signal: Signal) -> Observation:
        import sqlalchemy as sa

        query, detail = signal.query, signal.detail
        if self.engine.dialect.name == "sqlite":
            if signal.mysql_only:
                return Observation(
                    signal.name, SOURCE, query, not_applicable=f"{signal.mysql_only} on SQLite"
                )
            query, detail = signal.sqlite_query or query, signal.sqlite_detail or detail
        lacking = [p for p in signal.privileges if p not in self.privileges()]
        if lacking and self.engine.dialect.name != "sqlite":
            user = self.engine.url.username or "the profile's user"
            return Observation(
                signal.name,
                SOURCE,
                query,
                error=f"needs {' and '.join(lacking)} privilege ({user} lacks it: the server would show "
                f"only {user}'s own rows)",
            )
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

    def privileges(self) -> frozenset[str]:
        """The global privileges of the connection's user, read once per probe (``ALL`` counts as each)."""
        if self._privileges is None:
            self._privileges = user_privileges(self.engine)
        return self._privileges

    def close(self) -> None:
        self.engine.dispose()


def user_privileges(engine: Any) -> frozenset[str]:
    """Global privileges of ``engine``'s user on MySQL/MariaDB; ``ALL`` when the server does not say."""
    import sqlalchemy as sa

    if engine.dialect.name == "sqlite":
        return _AllPrivileges()
    try:
        with engine.connect() as conn:
            found = {
                str(p).upper()
                for p in conn.execute(
                    sa.text("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES")
                ).scalars()
            }
    except Exception:  # the query itself failed: the signals' own queries will say why
        return _AllPrivileges()
    return _AllPrivileges(found) if "ALL PRIVILEGES" in found else frozenset(found)


class _AllPrivileges(frozenset[str]):
    """Every privilege (ALL PRIVILEGES), or not knowable here: nothing is withheld on its account."""

    def __contains__(self, item: object) -> bool:
        return True


def _describe(exc: Exception) -> str:
    """The driver's own error (``orig``) rather than SQLAlchemy's wrapper text, named by its type."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {error_line(orig)}"
