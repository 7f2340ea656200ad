"""One apply at a time per runbook, across machines; and one at a time per shared remediation.

On MySQL/MariaDB the lock is ``GET_LOCK`` on a connection held for the whole run: the server releases it
when that connection ends, so a crashed or killed run never leaves it behind. Runbooks whose steps share a
remediation (B-1 and B-4 both re-publish payment events) also take that remediation's lock, so they never
run it at once. A row in ``remediation_lock`` names the holder for the refusal message; rows whose lock
nobody holds any more are deleted. Elsewhere (SQLite, the single-machine demo) the row itself is the lock;
a row whose process is gone on this host is taken over.

A lock can still be lost mid-run (its connection killed, the server restarted): ``ensure_held`` asks the
server before each step and batch, and a run that lost it stops with ``LockLost`` (exit 3).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from types import TracebackType

import sqlalchemy as sa

from concertops.contract.schema import remediation_lock
from concertops.engine.runs import lock_name, now, process_alive
from concertops.model.errors import ConcertopsError
from concertops.redact import error_line

HOLDER_WAIT_S = 2.0  # how long a refused run waits for the winner's holder row


class LockHeld(ConcertopsError):
    """Another run of the same runbook (or of the same shared remediation) is applying right now."""


class LockLost(ConcertopsError):
    """The run's lock is gone (its connection was killed): another run may be applying now."""


class RunLock:
    def __init__(
        self,
        engine: sa.Engine,
        runbook: str,
        holder: str,
        shared: tuple[str, ...] = (),
        state: sa.Engine | None = None,
    ) -> None:
        """``engine`` is the service's database (its server gives ``GET_LOCK``); ``state`` concertops's own
        store, where the holder rows live (default: ``engine``)."""
        self.server, self.holder = engine, holder
        self.engine = state if state is not None else engine
        self.names = [lock_name(runbook), *(lock_name(s) for s in shared)]
        self.name = self.names[0]
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._conn: sa.Connection | None = None
        self.connection_id: int | None = None  # the MySQL connection holding the lock
        self._mysql = engine.dialect.name in ("mysql", "mariadb")  # the server's lock, else the row
        self._taken: list[str] = []

    def __enter__(self) -> RunLock:
        if self._mysql:
            self._conn = self.server.connect()
            self.connection_id = int(self._conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())
            for name in self.names:
                got = self._conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar()
                if got != 1:
                    self._release()
                    raise self._refusal(name)
                self._taken.append(name)
            with self.engine.begin() as conn:
                clean_stale(conn, self._conn)
                for name in self.names:
                    conn.execute(remediation_lock.delete().where(remediation_lock.c.name == name))
                    conn.execute(remediation_lock.insert().values(**self._row(name)))
            self._conn.commit()
        else:
            self._take_rows()
        return self

    def ensure_held(self) -> None:
        """Raises ``LockLost`` unless the server says this run still holds every one of its locks."""
        if not self._mysql:
            return  # the row is the lock, and nothing but this process deletes it
        if self._conn is None:
            raise self._lost("its connection is gone")
        try:
            held = self._conn.execute(
                sa.text(
                    "SELECT "
                    + ", ".join(f"IS_USED_LOCK(:n{i}) = CONNECTION_ID()" for i in range(len(self.names)))
                ),
                {f"n{i}": name for i, name in enumerate(self.names)},
            ).one()
            self._conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            self._forget_connection()
            raise self._lost(f"its connection {self.connection_id} is gone ({error_line(exc)})") from None
        if not all(held):
            raise self._lost("the server no longer gives it to this run")

    def _lost(self, why: str) -> LockLost:
        return LockLost(
            f"the apply lock {self.name} was lost: {why}; stopped before the next step or batch",
            "another run may be applying now: see concertops audit, then check again",
        )

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    remediation_lock.delete().where(
                        remediation_lock.c.name.in_(self.names),
                        remediation_lock.c.host == self.host,
                        remediation_lock.c.pid == self.pid,
                    )
                )
        finally:
            self._release()

    def _release(self) -> None:
        """Gives the locks back; a lock connection that is gone has given them back already."""
        if self._conn is None:
            return
        try:
            for name in self._taken:
                self._conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
            self._conn.close()
        except sa.exc.SQLAlchemyError:
            self._forget_connection()
        self._conn, self._taken = None, []

    def _forget_connection(self) -> None:
        """The lock connection is dead (killed, server gone): the server released its locks with it."""
        if self._conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.invalidate()
                self._conn.close()
        self._conn, self._taken = None, []

    def _row(self, name: str) -> dict[str, object]:
        return {
            "name": name,
            "holder": self.holder[:300],
            "host": self.host[:200],
            "pid": self.pid,
            "acquired_at": now(),
        }

    def _take_rows(self) -> None:
        taken: list[str] = []
        try:
            for name in self.names:
                self._take_row(name)
                taken.append(name)
        except LockHeld:
            with self.engine.begin() as conn:
                conn.execute(
                    remediation_lock.delete().where(
                        remediation_lock.c.name.in_(taken), remediation_lock.c.pid == self.pid
                    )
                )
            raise

    def _take_row(self, name: str) -> None:
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(remediation_lock.insert().values(**self._row(name)))
                return
            except sa.exc.IntegrityError:
                holder = self._holder_row(name)
                if holder is not None and holder.host == self.host and not process_alive(holder.pid):
                    with self.engine.begin() as conn:  # its process is gone: a crashed run
                        conn.execute(
                            remediation_lock.delete().where(
                                remediation_lock.c.name == name, remediation_lock.c.pid == holder.pid
                            )
                        )
                    continue
                raise self._refusal(name) from None
        raise self._refusal(name)

    def _holder_row(self, name: str) -> sa.Row | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(remediation_lock).where(remediation_lock.c.name == name)).first()

    def _refusal(self, name: str) -> LockHeld:
        row = self._holder_row(name)
        # The winner writes its row right after the server gave it the lock: a run refused in between
        # waits that moment out rather than saying "another session".
        deadline = time.monotonic() + HOLDER_WAIT_S
        while row is None and self._mysql and time.monotonic() < deadline:
            time.sleep(0.05)
            row = self._holder_row(name)
        who = (
            f"{row.holder} on {row.host} (pid {row.pid}) since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
            if row is not None
            else self._server_holder(name)
        )
        runbook, what = self.name.split(":", 1)[1], name.split(":", 1)[1]
        shared = "" if name == self.name else f" (it shares the {what} remediation)"
        return LockHeld(
            f"{what} is being applied by {who}{shared}",
            "wait for that run to finish (concertops audit --runbook " + runbook + ")",
        )

    def _server_holder(self, name: str) -> str:
        """The holder as the server knows it, when no row names it (it wrote none: an older version, or
        its store is elsewhere): its connection, user and client host."""
        try:
            with self.server.connect() as conn:
                holder = conn.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar()
                found = (
                    conn.execute(
                        sa.text("SELECT user, host FROM information_schema.PROCESSLIST WHERE id = :i"),
                        {"i": holder},
                    ).first()
                    if holder is not None
                    else None
                )
        except sa.exc.SQLAlchemyError as exc:
            return f"another session (the server could not say which: {error_line(exc)})"
        if holder is None:
            return "a run that has just finished"
        where = f" ({found.user}@{found.host})" if found is not None else ""
        return f"connection {holder}{where}, which has written no holder row (no operator, host or pid known)"


def clean_stale(conn: sa.Connection, server: sa.Connection | None = None) -> int:
    """MySQL/MariaDB: deletes the rows (in ``conn``'s store) of locks nobody holds on ``server`` (default:
    the same connection) any more: their run died. How many."""
    asks = server if server is not None else conn
    names = list(conn.execute(sa.select(remediation_lock.c.name)).scalars())
    stale = [n for n in names if asks.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": n}).scalar() is None]
    if stale:
        conn.execute(remediation_lock.delete().where(remediation_lock.c.name.in_(stale)))
    return len(stale)
