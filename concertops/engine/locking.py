"""One apply at a time per runbook, across machines.

On MySQL/MariaDB the lock is ``GET_LOCK`` on a connection held for the whole run: the server releases it
when that connection ends, so a crashed or killed run never leaves it behind. A row in ``remediation_lock``
names the holder for the refusal message. Elsewhere (SQLite, the single-machine demo) the row itself is the
lock; a row whose process is gone on this host is taken over.
"""

from __future__ import annotations

import os
import socket
from types import TracebackType

import sqlalchemy as sa

from concertops.contract.schema import remediation_lock
from concertops.engine.audit import now
from concertops.model.errors import ConcertopsError


def lock_name(runbook: str) -> str:
    """The name of a runbook's apply lock (MySQL ``GET_LOCK`` and the ``remediation_lock`` row)."""
    return f"concertops:{runbook}"


class LockHeld(ConcertopsError):
    """Another run of the same runbook is applying right now."""


class RunLock:
    def __init__(self, engine: sa.Engine, runbook: str, holder: str) -> None:
        self.engine, self.name, self.holder = engine, lock_name(runbook), holder
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._conn: sa.Connection | None = None
        self.connection_id: int | None = None  # the MySQL connection holding the lock
        self._mysql = engine.dialect.name in ("mysql", "mariadb")

    def __enter__(self) -> RunLock:
        if self._mysql:
            self._conn = self.engine.connect()
            got, self.connection_id = self._conn.execute(
                sa.text("SELECT GET_LOCK(:n, 0), CONNECTION_ID()"), {"n": self.name}
            ).one()
            self._conn.commit()
            if got != 1:
                self._conn.close()
                self._conn = None
                raise self._refusal()
            with self.engine.begin() as conn:
                conn.execute(remediation_lock.delete().where(remediation_lock.c.name == self.name))
                conn.execute(remediation_lock.insert().values(**self._row()))
        else:
            self._take_row()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    remediation_lock.delete().where(
                        remediation_lock.c.name == self.name,
                        remediation_lock.c.host == self.host,
                        remediation_lock.c.pid == self.pid,
                    )
                )
        finally:
            if self._conn is not None:
                self._conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": self.name})
                self._conn.close()

    def _row(self) -> dict[str, object]:
        return {
            "name": self.name,
            "holder": self.holder[:300],
            "host": self.host[:200],
            "pid": self.pid,
            "acquired_at": now(),
        }

    def _take_row(self) -> None:
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(remediation_lock.insert().values(**self._row()))
                return
            except sa.exc.IntegrityError:
                holder = self._holder_row()
                if holder is not None and holder.host == self.host and not _alive(holder.pid):
                    with self.engine.begin() as conn:  # its process is gone: a crashed run
                        conn.execute(
                            remediation_lock.delete().where(
                                remediation_lock.c.name == self.name, remediation_lock.c.pid == holder.pid
                            )
                        )
                    continue
                raise self._refusal() from None
        raise self._refusal()

    def _holder_row(self) -> sa.Row | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(remediation_lock).where(remediation_lock.c.name == self.name)
            ).first()

    def _refusal(self) -> LockHeld:
        row = self._holder_row()
        who = (
            f"{row.holder} on {row.host} (pid {row.pid}) since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
            if row is not None
            else "another session"
        )
        runbook = self.name.split(":", 1)[1]
        return LockHeld(
            f"{runbook} is being applied by {who}",
            "wait for that run to finish (concertops audit --runbook " + runbook + ")",
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
