"""concertops's own state: the remediation audit and the lock holders, kept out of the service's schema.

Where it lives (``locate``):
- the profile's ``state_url`` when it names one;
- on the reference service (concertops's twin), that service's own database: the twin's migrations
  create the two tables there;
- otherwise the local SQLite state file when it holds the tables (read without the network: ``audit``
  must answer while the service's server is down), else a ``concertops`` schema on the service's MySQL
  server. The file is ``$CONCERTOPS_STATE_DIR/state.sqlite`` when that is set, else
  ``$XDG_STATE_HOME/concertops/state.sqlite``.

``concertops state init`` creates it: the ``concertops`` schema when the profile's user may create one,
else the SQLite file. A store that does not exist yet is one line naming that command. The lock itself is
still the service server's ``GET_LOCK`` (no table needed, and it holds across machines); the store keeps
only who holds it, for the refusal message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from concertops.model.errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from concertops.config import Profile

SCHEMA = "concertops"
INIT = "concertops state init"


class StateMissing(ConfigError):
    """concertops's own store (audit, lock holders) does not exist yet."""


@dataclass(frozen=True)
class StateStore:
    url: str
    why: str  # how it was chosen, for `state init` and `state show`


# MySQL error codes: unknown database; access denied to it.
_NO_SUCH_SCHEMA = (1049, 1044)
_TWIN = "the reference service's own database (its migrations hold the state tables)"


def sqlite_path() -> Path:
    """The local state file: in ``$CONCERTOPS_STATE_DIR`` (concertops's one local state directory, the
    devstack's too) when it is set, so two environments kept apart by it never share an audit; else
    ``$XDG_STATE_HOME/concertops/state.sqlite``."""
    explicit = os.environ.get("CONCERTOPS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve() / "state.sqlite"
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "concertops" / "state.sqlite"


def candidates(profile: Profile) -> list[StateStore]:
    """Where the state may live, in the order it is looked for."""
    from concertops.contract import service_map

    if profile.state_url:
        return [StateStore(profile.state_url, "the profile's state_url")]
    url = profile.database_url
    if url and service_map.for_profile(profile).acts.state_tables:
        return [StateStore(url, _TWIN)]
    found = []
    server = _schema_url(url, SCHEMA) if url else None
    if server is not None:
        found.append(StateStore(server, f"the {SCHEMA} schema on the service's server"))
    found.append(StateStore(f"sqlite:///{sqlite_path()}", "the local state file"))
    return found


def locate(profile: Profile, timeout_s: float = 5.0) -> StateStore:
    """The store that holds concertops's tables, or ``StateMissing`` naming ``state init``."""
    tried = candidates(profile)
    # A local state file that holds the tables answers without the network: reading concertops's own
    # audit must not wait on the service's server (it may be the very thing that is down).
    for store in tried:
        if store.url.startswith("sqlite") and _has_tables(store.url, timeout_s):
            return store
    for store in tried:
        if not store.url.startswith("sqlite") and _has_tables(store.url, timeout_s):
            return store
    from concertops.redact import redact_url

    where = " or ".join(redact_url(s.url) for s in tried)
    raise StateMissing(f"concertops's state store does not exist yet ({where})", f"run `{INIT}`")


def open_state(
    profile: Profile, timeout_s: float = 5.0, connections: int = 2, service: sa.Engine | None = None
) -> sa.Engine:
    """An engine on the store; ``service`` itself when the store is the service's own database (the twin),
    so a run opens no second pool there. The caller disposes of it unless it is ``service``."""
    from concertops.sources.database import open_engine

    url = locate(profile, timeout_s).url
    if service is not None and url == profile.database_url:
        return service
    return open_engine(url, timeout_s, connections=connections)


def init(profile: Profile, timeout_s: float = 5.0) -> tuple[StateStore, bool]:
    """Creates the store where ``candidates`` says (the schema first; the SQLite file when the user may
    not create one); (the store, whether it was created now)."""
    import sqlalchemy as sa

    from concertops.contract.schema import remediation_audit, remediation_lock
    from concertops.sources.database import open_engine

    last: Exception | None = None
    for store in candidates(profile):
        if _has_tables(store.url, timeout_s):
            return store, False
        try:
            _create_container(store.url, timeout_s)
            engine = open_engine(store.url, timeout_s)
            try:
                remediation_audit.metadata.create_all(engine, tables=[remediation_audit, remediation_lock])
            finally:
                engine.dispose()
            return store, True
        except sa.exc.SQLAlchemyError as exc:  # no CREATE privilege: the next place
            last = exc
    from concertops.redact import error_line

    raise ConfigError(
        f"could not create concertops's state store: {error_line(last) if last else 'nowhere to put it'}",
        "set state_url in the profile to a database concertops may write",
    )


def _schema_url(url: str, schema: str) -> str | None:
    """``url`` on the same MySQL server with ``schema`` as its database; None for other databases, or
    when the service's own database has that name (the state must not share it)."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith(("mysql", "mariadb")) or parsed.database == schema:
        return None
    return parsed.set(database=schema).render_as_string(hide_password=False)


def _create_container(url: str, timeout_s: float) -> None:
    import sqlalchemy as sa

    from concertops.sources.database import open_engine

    parsed = sa.engine.make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return
    server = open_engine(parsed.set(database="").render_as_string(hide_password=False), timeout_s)
    try:
        with server.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`"))
    finally:
        server.dispose()


def _has_tables(url: str, timeout_s: float) -> bool:
    import sqlalchemy as sa

    from concertops.sources.database import open_engine

    parsed = sa.engine.make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database and not Path(parsed.database).exists():
        return False  # connecting would create an empty file
    # A server that accepts and never answers must not hold a look-up past its timeout (the handshake is a
    # read, and PyMySQL's reads wait read_timeout, a minute by default).
    engine = open_engine(url, timeout_s, connections=1, read_timeout_s=timeout_s, pool_wait_s=timeout_s)
    try:
        names = set(sa.inspect(engine).get_table_names())
    except sa.exc.DBAPIError as exc:
        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
        if code in _NO_SUCH_SCHEMA:
            return False
        raise  # the server is down or refuses us: not "missing", and `state init` would not help
    finally:
        engine.dispose()
    return {"remediation_audit", "remediation_lock"} <= names
