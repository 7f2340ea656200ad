"""``concertops doctor``: is every configured source reachable, and what version is it?"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from concertops.config import Profile
    from concertops.sources.health import SourceCheck

from concertops.cli import console
from concertops.cli.state import OPTIONS


def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Check every source of the profile in parallel: database, Redis, Kafka, Prometheus, /metrics, backend.

    Then the privileges each runbook needs, the profile's service map held against the live service
    (tables and columns, Redis key types, topics and consumer groups), one line per thing missing, and
    concertops's own state store (which `concertops state init` creates before the first --apply).
    Each failure names the source and the fix. Exit 0 when all answer, 3 when any does not.
    """
    from concertops.contract import service_map
    from concertops.sources import map_check
    from concertops.sources.health import check_sources

    profile = OPTIONS.load_profile()
    shape = service_map.for_profile(profile)  # a bad map: one line naming file and field, exit 3
    checks = check_sources(profile)
    database = next((c for c in checks if c.source == "database"), None)
    if database is not None and database.ok and database.detail.startswith(("mysql", "mariadb")):
        checks.append(_privileges(profile.database_url or ""))
    if checks:
        # Only against stores that answered: a dead one's row already says why.
        answered = {c.source for c in checks if c.ok}
        checks += map_check.run(profile, shape, answered)
    if checks and (profile.state_url or database is None or database.ok):
        checks.append(_state_store(profile))
    if as_json:
        console.out().print_json(json.dumps({"profile": profile.name, "checks": [asdict(c) for c in checks]}))
    else:
        _render(profile.name, checks)
    raise typer.Exit(0 if checks and all(c.ok for c in checks) else 3)


# What a step needs besides its signals': kill-idle must see every connection to choose its victims.
_STEP_PRIVILEGES = {"kill_idle": ("PROCESS",)}


def needed_privileges() -> dict[str, set[str]]:
    """Runbook id → the server privileges its signals and steps need (PROCESS for the processlist, …)."""
    from concertops.runbooks.pages import RUNBOOK_IDS, load

    needs: dict[str, set[str]] = {}
    for runbook_id in RUNBOOK_IDS:
        page = load(runbook_id)
        wanted = {p for s in page.signals for p in s.privileges}
        wanted |= {p for step in page.remediation for p in _STEP_PRIVILEGES.get(step.action, ())}
        if wanted:
            needs[runbook_id] = wanted
    return needs


def _privileges(url: str) -> SourceCheck:
    """One row: which runbooks need which privilege, and whether the profile's user has it."""
    import time

    from concertops.sources.database import open_engine
    from concertops.sources.health import SourceCheck
    from concertops.sources.sql import user_privileges

    started = time.monotonic()
    engine = open_engine(url, 3.0, connections=1, read_timeout_s=3.0, pool_wait_s=3.0)
    try:
        held = user_privileges(engine)
    finally:
        engine.dispose()
    user = engine.url.username or "?"
    if held is None:
        return SourceCheck(
            "privileges",
            user,
            False,
            "the user's privileges could not be read (information_schema.USER_PRIVILEGES)",
            "check the database user's access; the signals that need PROCESS read UNKNOWN meanwhile",
            round(time.monotonic() - started, 3),
        )
    parts, missing = [], set()
    for runbook_id, wanted in sorted(needed_privileges().items()):
        for privilege in sorted(wanted):
            has = privilege in held
            parts.append(f"{runbook_id} needs {privilege}: {'yes' if has else 'MISSING'}")
            if not has:
                missing.add(privilege)
    fix = f"GRANT {', '.join(sorted(missing))} ON *.* TO '{user}'@'<host>'" if missing else ""
    return SourceCheck(
        "privileges",
        user,
        not missing,
        "; ".join(parts) or "none needed",
        fix,
        round(time.monotonic() - started, 3),
    )


def _state_store(profile: Profile) -> SourceCheck:
    """One row: where concertops's audit and lock holders go, and whether that store exists yet."""
    import time

    from concertops.engine import state_store
    from concertops.redact import error_line, redact_url
    from concertops.sources.health import SourceCheck

    started = time.monotonic()
    target = redact_url(state_store.candidates(profile)[0].url)
    try:
        store = state_store.locate(profile, timeout_s=3.0)
    except state_store.StateMissing as missing:
        ok, detail, fix = False, str(missing), f"{missing.hint} (before the first --apply)"
    except Exception as exc:  # the store's server refused us: `state init` would not help
        ok, detail, fix = False, error_line(exc), "check state_url (env CONCERTOPS_STATE_URL)"
    else:
        ok, target, detail, fix = True, redact_url(store.url), store.why, ""
    return SourceCheck("state store", target, ok, detail, fix, round(time.monotonic() - started, 3))


def _render(profile: str, checks: list[SourceCheck]) -> None:
    if not checks:
        console.out().print(f"profile {profile}: no source configured — see `concertops config show`")
        return
    table = console.table("source", "target", "", "detail", title=f"profile {profile}")
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[bold red]FAIL[/]"
        detail = c.detail if c.ok else f"{c.detail}\n[yellow]fix:[/] {c.fix}"
        table.add_row(c.source, c.target, mark, detail)
    console.out().print(table)
