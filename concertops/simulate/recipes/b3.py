"""B-3's incident, caused on the reference service: default pool exhausted."""

from __future__ import annotations

from concertops.model.errors import UsageError
from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    from concertops.simulate import idle_holder

    if not str(svc.profile.database_url).startswith("mysql"):
        raise UsageError(
            "B-3 needs MySQL/MariaDB: idle connections live in its processlist, SQLite has none",
            "run it against the devstack (concertops devstack up)",
        )
    svc.settings(("db_pool_size",))
    run.did("legacy pool: the driver's default of 10 connections per instance")
    pid = idle_holder.spawn(str(svc.profile.database_url), count=55, seconds=600)
    run.did(f"55 connections of the app's database user opened and left idle (pid {pid}, gone in 10 min)")


RECIPE = kit.Recipe(
    "B-3",
    "default pool exhausted",
    "idle connections pile up against a pool of 10",
    cause,
    ("idle_connections",),
)
