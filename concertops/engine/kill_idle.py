"""B-3: kill idle database connections the way pt-kill does, not the manual's "KILL every sleeping one".

Only connections in ``Sleep`` for longer than ``min_idle_s``, only of the application's database user, never
a connection concertops opened (each carries a user lock named after it: an apply-lock connection of any
run sleeps for that whole run), never one holding a user lock where the server lists them
(performance_schema / METADATA_LOCK_INFO), never system or replication threads (they are not ``Sleep`` of
the app user), at most ``max_kills``: those inside an open transaction first (a pool they hold never frees
itself; the kill rolls their transaction back), oldest transaction first, then the longest idle. The plan
says how many of how many; each victim is printed (id, user, host, db, idle seconds). A dry run prints the
same list and kills nothing.
The pool that owned a killed connection opens a new one when it needs it (pre-ping), so a kill costs the
service nothing but headroom it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import CONNECTION_MARK, is_mysql
from concertops.sources.sql import user_privileges

_IDLE = (
    "FROM information_schema.PROCESSLIST p WHERE p.command = 'Sleep' AND p.time > :idle AND p.user = :user "
    "AND p.id <> CONNECTION_ID() AND IS_USED_LOCK(CONCAT(:mark, p.id)) IS NULL"
)
# Those inside an open transaction first, oldest transaction first: they are what holds a pool for good.
# InnoDB's transactions need the PROCESS privilege; without it, the longest idle first.
_VICTIMS = (
    sa.text(
        "SELECT p.id, p.user, p.host, p.db, p.time, t.trx_started IS NOT NULL AS in_trx "
        + _IDLE.replace(
            " WHERE ", " LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.id WHERE ", 1
        )
        + " ORDER BY t.trx_started IS NULL, t.trx_started, p.time DESC, p.id"
    ),
    sa.text(f"SELECT p.id, p.user, p.host, p.db, p.time, 0 AS in_trx {_IDLE} ORDER BY p.time DESC, p.id"),
)

Victim = tuple[int, str, str, str, int, bool]  # id, user, host, db, idle seconds, inside a transaction
# Sessions holding a user lock (GET_LOCK), where the server can list them: MySQL, MariaDB with the plugin.
_LOCK_HOLDERS = (
    "SELECT t.PROCESSLIST_ID FROM performance_schema.metadata_locks m JOIN performance_schema.threads t"
    " ON t.THREAD_ID = m.OWNER_THREAD_ID WHERE m.OBJECT_TYPE = 'USER LEVEL LOCK'",
    "SELECT THREAD_ID FROM information_schema.METADATA_LOCK_INFO WHERE LOCK_TYPE = 'User lock'",
)


def lock_holders(conn: sa.Connection) -> set[int] | None:
    """Ids of sessions holding a user lock; None when this server does not list them."""
    for query in _LOCK_HOLDERS:
        try:
            return {int(i) for i in conn.execute(sa.text(query)).scalars() if i is not None}
        except sa.exc.DBAPIError:
            continue
    return None


@dataclass
class KillIdle:
    step: Step
    victims: list[Victim] = field(default_factory=list)

    def _settings(self, ctx: Context) -> tuple[int, int, str]:
        config: catalogue.KillIdleParams = self.step.config
        idle, kills = config.min_idle_s, config.max_kills  # ranges checked by the step's model
        user = str(config.app_user or ctx.engine.url.username or "")
        if not user:
            raise UsageError(f"{self.step.id}: no application database user", "pass --app-user")
        own = ctx.engine.url.username or ""
        if user != own and "PROCESS" not in (user_privileges(ctx.engine) or frozenset()):
            # Without it the processlist shows only our own sessions: "nothing idle" would be a guess.
            raise UsageError(
                f"{self.step.id}: needs the PROCESS privilege to see {user}'s connections ({own} lacks it)",
                f"GRANT PROCESS ON *.* TO '{own}'@'<host>', or run as {user}",
            )
        return idle, kills, user

    def _find(self, conn: sa.Connection, idle: int, user: str, spare: set[int]) -> list[Victim]:
        """Every connection this step may kill, in the order it kills them (a processlist is bounded by
        max_connections, so all of them are read: the plan says how many one run leaves)."""
        spare = spare | (lock_holders(conn) or set())
        params = {"idle": idle, "user": user, "mark": CONNECTION_MARK}
        in_transaction_first, by_idle_time = _VICTIMS
        try:
            rows = conn.execute(in_transaction_first, params).all()
        except sa.exc.DBAPIError:  # no PROCESS privilege for InnoDB's transactions: by idle time
            conn.rollback()
            rows = conn.execute(by_idle_time, params).all()
        found = [
            (int(r.id), r.user, r.host, r.db or "", int(r.time), bool(r.in_trx))
            for r in rows
            if int(r.id) not in spare
        ]
        return found

    def gather(self, ctx: Context) -> list[Victim]:
        idle, _kills, user = self._settings(ctx)
        with ctx.engine.connect() as conn:
            return self._find(conn, idle, user, ctx.own_connections)

    def prepare(self, ctx: Context) -> str:
        if not is_mysql(ctx.engine):
            return "not applicable: the database is not MySQL/MariaDB (no connections to kill)"
        idle, kills, user = self._settings(ctx)
        self.victims, line = decide(self.gather(ctx), kills, user, idle)
        return line

    def run(self, ctx: Context) -> Outcome:
        """Kills only the connections the plan named that are still idle now: one that woke up since is
        spared, and one that became idle since is not the plan's (the next run sees it)."""
        if not is_mysql(ctx.engine):
            return Outcome("skipped", 0, "not applicable on this database (MySQL/MariaDB only)")
        idle, kills, user = self._settings(ctx)
        planned = {v[0] for v in self.victims}
        killed: list[str] = []
        with ctx.engine.connect() as conn:
            victims = [v for v in self._find(conn, idle, user, ctx.own_connections) if v[0] in planned][
                :kills
            ]
            for vid, vuser, host, db, seconds, in_trx in victims:
                ctx.ensure_locked()
                verb = "would kill" if ctx.dry_run else "kill"
                inside = ", inside a transaction (rolled back)" if in_trx else ""
                ctx.note(f"{verb} {vid} {vuser}@{host} db={db or '-'} idle {seconds} s{inside}")
                if ctx.dry_run:
                    ctx.would(f"KILL CONNECTION {int(vid)}  -- {vuser}@{host} idle {seconds} s")
                    killed.append(str(vid))
                    continue
                try:
                    conn.execute(sa.text(f"KILL CONNECTION {int(vid)}"))
                    killed.append(str(vid))
                except sa.exc.DBAPIError as exc:  # gone already (1094 unknown thread): nothing to do
                    ctx.note(f"  {vid}: {str(exc.orig).splitlines()[0] if exc.orig else exc}")
        if not victims:
            return Outcome("ok", 0, f"nothing to kill: no connection of {user} idle for over {idle} s")
        verb = "would kill" if ctx.dry_run else "killed"
        return Outcome(
            "ok",
            len(killed),
            f"{verb} {len(killed)} idle connection(s): {', '.join(killed)}",
            changed=not ctx.dry_run,
        )


def decide(found: list[Victim], kills: int, user: str, idle: int) -> tuple[list[Victim], str]:
    """The connections to kill, in order, at most ``kills``, and the plan's line (pure)."""
    victims = found[:kills]
    if not victims:
        return [], f"no connection of {user} idle for over {idle} s"
    return victims, _plan_line(victims, len(found), kills, user, idle)


def _plan_line(victims: list[Victim], total: int, kills: int, user: str, idle: int) -> str:
    """What one run will do, said up front: how many of how many, and what a kill does to a transaction."""
    line = f"kill {len(victims)} of {total} connection(s) of {user} idle for over {idle} s"
    in_trx = sum(1 for v in victims if v[5])
    if in_trx:
        line += (
            f"; {in_trx} inside an open transaction, which rolls back: what it wrote (a payment) is not"
            " committed"
        )
    if total > len(victims):
        line += f"; {total - len(victims)} left idle: run again or raise --max-kills (now {kills})"
    return line
