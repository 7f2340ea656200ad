"""The service database as concertops opens it, for detection and remediation alike: the one engine factory.

On MySQL every session runs in UTC (the manual's ``NOW()`` against times the twin writes in UTC) and READ
COMMITTED; connecting, waiting for a pooled connection and reading are all bounded. On SQLite writers queue
behind each other instead of failing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from concertops.model.errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy as sa


# Every MySQL connection concertops opens takes a user lock named after itself: any session can then tell
# it apart (``IS_USED_LOCK(CONCAT(CONNECTION_MARK, id))``) without privileges or performance_schema, and
# kill-idle never kills one (a run's apply-lock connection sleeps for the whole run). The server drops
# the lock with the connection.
CONNECTION_MARK = "concertops:conn:"


# How this process's MySQL connections use TLS (the profile's ``tls``), and the one context they share:
# PyMySQL otherwise builds a context and loads the system's certificates on every connect (36 ms of CPU
# here), even where the server offers no TLS at all.
_TLS = {"mode": "prefer"}
_CONTEXT: list[Any] = []
_PREFERRING: list[Any] = []


def use_tls(mode: str) -> None:
    """``prefer`` (TLS when the server offers it, as PyMySQL does by default), ``require`` or ``off``."""
    _TLS["mode"] = mode


def _shared_context() -> Any:
    import ssl

    if not _CONTEXT:
        # As PyMySQL's own for preferred/required mode without a CA: encrypted, the certificate unchecked
        # (MySQL's own servers sign theirs themselves).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _CONTEXT.append(context)
    return _CONTEXT[0]


def _connect_with_shared_tls(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """SQLAlchemy's ``do_connect``: a PyMySQL connection whose TLS context is the process's one."""
    from pymysql.connections import Connection

    mode = _TLS["mode"]
    if mode == "off" or "ssl" in cparams or any(k.startswith("ssl_") for k in cparams):
        if mode == "off":
            cparams["ssl_disabled"] = True
        return Connection(*cargs, **cparams)
    if mode == "require":
        return Connection(*cargs, **{**cparams, "ssl": _shared_context()})

    if not _PREFERRING:

        class Preferring(Connection):  # PyMySQL's preferred mode, with the shared context
            def _create_ssl_ctx(self, sslp: Any) -> Any:
                return _shared_context() if sslp == {} else super()._create_ssl_ctx(sslp)

        _PREFERRING.append(Preferring)
    return _PREFERRING[0](*cargs, **cparams)


def open_engine(
    url: str | None,
    timeout_s: float = 10.0,
    connections: int = 2,
    read_timeout_s: float | None = None,
    pool_wait_s: float = 30.0,
) -> sa.Engine:
    """``timeout_s`` bounds connecting, ``read_timeout_s`` one statement (default: a minute at least, as a
    remediation batch may take a while), ``pool_wait_s`` the wait for a pooled connection. A check passes
    its deadline for all three."""
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
            # A hung server must not hang us; PyMySQL takes whole seconds.
            "read_timeout": max(1, int(read_timeout_s)) if read_timeout_s else max(wait, 60),
            "init_command": "SET time_zone = '+00:00'",
            "program_name": "concertops",  # performance_schema.session_connect_attrs, where it is on
        }
    engine = sa.create_engine(
        url,
        pool_size=connections,
        max_overflow=0,
        pool_timeout=pool_wait_s,
        pool_pre_ping=True,
        isolation_level="READ COMMITTED" if url.startswith("mysql") else None,
        connect_args=connect_args,
    )
    if url.startswith("mysql+pymysql"):
        sa.event.listen(engine, "do_connect", _connect_with_shared_tls)
    if url.startswith("mysql"):
        sa.event.listen(engine, "connect", _mark_connection)
    return engine


def _mark_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT GET_LOCK(CONCAT(%s, CONNECTION_ID()), 0)", (CONNECTION_MARK,))
        cursor.fetchall()
    finally:
        cursor.close()


def is_mysql(engine: sa.Engine) -> bool:
    return engine.dialect.name in ("mysql", "mariadb")


def database_now(conn: sa.Connection) -> datetime:
    """The database's clock, in UTC and naive as the service stores its times. A run's cutoffs come from
    here, read once: an operator's host whose clock is off must not expire holds that are not due."""
    import sqlalchemy as sa

    if conn.dialect.name == "sqlite":
        return datetime.fromisoformat(str(conn.execute(sa.text("SELECT datetime('now')")).scalar_one()))
    value = conn.execute(sa.text("SELECT UTC_TIMESTAMP()")).scalar_one()
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
