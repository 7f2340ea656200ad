"""B-3: kill idle database connections the way pt-kill does, not the manual's "KILL every sleeping one".

Only connections in ``Sleep`` for longer than ``min_idle_s``, only of the application's database user, never
a connection concertops opened (each carries a user lock named after it: an apply-lock connection of any
run sleeps for that whole run), never one holding a user lock where the server lists them
(performance_schema / METADATA_LOCK_INFO), never system or replication threads (they are not ``Sleep`` of
the app user), at most ``max_kills``, longest idle first;
each victim is printed (id, user, host, db, idle seconds). A dry run prints the same list and kills nothing.
The pool that owned a killed connection opens a new one when it needs it (pre-ping), so a kill costs the
service nothing but headroom it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from concertops.engine.actions import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import actions as catalogue
from concertops.sources.database import CONNECTION_MARK, is_mysql
from concertops.sources.sql import user_privileges

_VICTIMS = sa.text(
    "SELECT id, user, host, db, time FROM information_schema.PROCESSLIST "
    "WHERE command = 'Sleep' AND time > :idle AND user = :user AND id <> CONNECTION_ID() "
    "AND IS_USED_LOCK(CONCAT(:mark, id)) IS NULL "
    "ORDER BY time DESC, id LIMIT :limit"
)
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
    victims: list[tuple[int, str, str, str, int]] = field(default_factory=list)

    def _settings(self, ctx: Context) -> tuple[int, int, str]:
        config: catalogue.KillIdle = self.step.config
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

    def _find(
        self, conn: sa.Connection, idle: int, kills: int, user: str, spare: set[int]
    ) -> list[tuple[int, str, str, str, int]]:
        spare = spare | (lock_holders(conn) or set())
        params = {"idle": idle, "user": user, "limit": kills + len(spare), "mark": CONNECTION_MARK}
        rows = conn.execute(_VICTIMS, params).all()
        found = [(int(r.id), r.user, r.host, r.db or "", int(r.time)) for r in rows if int(r.id) not in spare]
        return found[:kills]

    def prepare(self, ctx: Context) -> str:
        if not is_mysql(ctx.engine):
            return "not applicable: the database is not MySQL/MariaDB (no connections to kill)"
        idle, kills, user = self._settings(ctx)
        with ctx.engine.connect() as conn:
            self.victims = self._find(conn, idle, kills, user, ctx.own_connections)
        if not self.victims:
            return f"no connection of {user} idle for over {idle} s"
        return f"kill {len(self.victims)} connection(s) of {user} idle for over {idle} s (at most {kills})"

    def run(self, ctx: Context) -> Outcome:
        if not is_mysql(ctx.engine):
            return Outcome("skipped", 0, "not applicable on this database (MySQL/MariaDB only)")
        idle, kills, user = self._settings(ctx)
        killed: list[str] = []
        with ctx.engine.connect() as conn:
            # Found again now: a connection that woke up since the plan is no longer idle and is spared.
            victims = self._find(conn, idle, kills, user, ctx.own_connections)
            for vid, vuser, host, db, seconds in victims:
                ctx.ensure_locked()
                verb = "would kill" if ctx.dry_run else "kill"
                ctx.note(f"{verb} {vid} {vuser}@{host} db={db or '-'} idle {seconds} s")
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
