"""``concertops settings``: the backend's runtime settings — list, get, set, history, rollback, preset.

Every change is validated (type, range), kept in the history with operator and reason, audited, and reported
as done only when every live instance exports the new version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from concertops.cli.check import TableOrJson
from concertops.cli.state import OPTIONS

if TYPE_CHECKING:
    import sqlalchemy as sa

    from concertops.config import Profile

app = typer.Typer(
    help="Runtime settings of the booking service (read live by every instance).", no_args_is_help=True
)

REASON = typer.Option("", "--reason", "-r", help="Why (kept in the history and the audit), e.g. INC-1234.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (automation).")
WAIT = typer.Option(30.0, "--wait", min=0, max=600, help="Seconds to wait for every instance to apply it.")


Fmt = TableOrJson

FORMAT = typer.Option(Fmt.table, "--format", "-f", help="table or json.")


@app.command("list")
def list_settings(fmt: Fmt = FORMAT) -> None:
    """Every setting: the value in force, the presets' values, and what each live instance applies."""
    from concertops.contract import settings as specs
    from concertops.engine import settings_ops
    from concertops.sources.instances import applied_versions

    profile, engine = _open()
    values, version = settings_ops.current(engine)
    instances = applied_versions(profile)
    if fmt is Fmt.json:
        _json(
            {
                "version": version,
                "instances": instances,
                "settings": {
                    s.name: {
                        "value": s.render(values[s.name]),
                        "recommended": s.render(s.default),
                        "legacy": s.render(s.legacy),
                        "help": s.help,
                    }
                    for s in specs.SPECS
                },
            }
        )
        return
    from concertops.cli import console

    table = console.table(
        "name", "value", "recommended", "legacy", "meaning", title=f"settings version {version}", edge=False
    )
    for s in specs.SPECS:
        value = s.render(values[s.name])
        shown = value if value == s.render(s.default) else f"[bold yellow]{value}[/]"
        table.add_row(s.name, shown, s.render(s.default), s.render(s.legacy), s.help)
    console.out().print(table)
    if instances:
        behind = {i: v for i, v in instances.items() if v < version}
        state = "all applied" if not behind else f"[yellow]behind: {behind}[/]"
        console.out().print(f"instances: {len(instances)} live, {state}")
    else:
        console.out().print("[dim]instances: none answering (no metrics_urls / prometheus_url answered)[/]")


@app.command()
def get(name: str = typer.Argument(..., help="Setting name, e.g. db_pool_size.")) -> None:
    """Print one setting's value in force (plain, for scripts)."""
    from concertops.contract import settings as specs
    from concertops.engine import settings_ops

    spec = specs.spec(name)
    _profile, engine = _open()
    values, _version = settings_ops.current(engine)
    typer.echo(spec.render(values[spec.name]))


@app.command("set")
def set_settings(
    assignments: list[str] = typer.Argument(
        ..., metavar="NAME=VALUE...", help="e.g. db_pool_size=30 event_activation=on"
    ),
    reason: str = REASON,
    yes: bool = YES,
    wait: float = WAIT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
) -> None:
    """Change settings; reported done when every live instance applies them.

    Examples:

      concertops settings set max_active_tokens=20 --reason INC-42

      concertops settings set publish_mode=outbox -y
    """
    from concertops.engine import settings_ops

    changes = settings_ops.parse_assignments(assignments)
    profile, engine = _open()
    _change(
        profile, engine, changes, reason or "settings set", yes, wait, dry_run, "set " + " ".join(assignments)
    )


@app.command()
def preset(
    name: str = typer.Argument(
        ..., help="recommended (the manual's fixes) or legacy (its 'current' values)."
    ),
    reason: str = REASON,
    yes: bool = YES,
    wait: float = WAIT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
) -> None:
    """Apply a preset: every setting to its value in that preset."""
    from concertops.contract import settings as specs
    from concertops.model.errors import UsageError

    if name not in specs.PRESETS:
        raise UsageError(f"unknown preset '{name}'", f"use one of: {', '.join(specs.PRESETS)}")
    profile, engine = _open()
    _change(
        profile,
        engine,
        dict(specs.PRESETS[name]),
        reason or f"preset {name}",
        yes,
        wait,
        dry_run,
        f"preset {name}",
    )


@app.command()
def history(
    name: str = typer.Option(None, "--name", "-n", help="Only this setting."),
    limit: int = typer.Option(30, "--limit", min=1, max=10_000, help="Newest rows to show."),
    fmt: Fmt = FORMAT,
) -> None:
    """Every change: version, setting, old → new, operator, reason, when."""
    from concertops.engine import settings_ops

    _profile, engine = _open()
    rows = settings_ops.history(engine, name, limit)
    if fmt is Fmt.json:
        _json(rows)
        return
    from concertops.cli import console

    table = console.table(
        "version", "setting", "old → new", "operator", "reason", "changed (UTC)", edge=False
    )
    for r in rows:
        table.add_row(
            str(r["version"]),
            r["name"],
            f"{r['old_value'] or '(default)'} → {r['new_value']}",
            r["operator"],
            r["reason"],
            f"{r['changed_at']:%Y-%m-%d %H:%M:%S}",
        )
    console.out().print(table if rows else "no settings changes recorded")


@app.command()
def rollback(
    version: int = typer.Argument(..., help="The version to return to (see `concertops settings history`)."),
    reason: str = REASON,
    yes: bool = YES,
    wait: float = WAIT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
) -> None:
    """Return every setting to its value at VERSION (written as a new version, so it is history too)."""
    from concertops.engine import settings_ops

    profile, engine = _open()
    changes = settings_ops.rollback_changes(engine, version)
    _change(
        profile,
        engine,
        changes,
        reason or f"rollback to version {version}",
        yes,
        wait,
        dry_run,
        f"rollback {version}",
    )


def _change(
    profile: Profile,
    engine: sa.Engine,
    changes: dict[str, Any],
    reason: str,
    yes: bool,
    wait: float,
    dry_run: bool,
    what: str,
) -> None:
    from concertops.cli import console
    from concertops.engine import settings_ops
    from concertops.engine.audit import AuditLog
    from concertops.sources.instances import wait_applied

    out = console.out()
    pending = settings_ops.preview(engine, changes)
    if not pending:
        out.print("nothing to change: every value is already in force")
        raise typer.Exit(0)
    for change in pending:
        out.print(f"  {change.name}: {change.old} → [bold]{change.new}[/]")
    if dry_run:
        out.print("[bold]Dry run[/]: nothing was written.")
        raise typer.Exit(0)
    if not yes:
        _confirm(profile)
    from concertops.engine.state_store import open_state

    state = open_state(profile, service=engine)
    audit = AuditLog(state, "settings", profile.name, dry_run=False, reason=reason)
    row = audit.start("settings", what, {c.name: c.new for c in pending})
    try:
        written = settings_ops.write(engine, changes, audit.operator, reason)
    except BaseException as exc:
        audit.finish(
            row, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", 0, type(exc).__name__
        )
        raise
    applied, seen = wait_applied(profile, written.version, wait) if wait else (False, {})
    detail = f"version {written.version}; instances {seen or 'not checked'}"
    audit.finish(row, "ok" if applied or not seen else "failed", len(written.changes), detail)
    if not seen:
        out.print(
            f"written as version {written.version}; "
            "[yellow]no instance answered[/]: not verified on instances"
        )
        raise typer.Exit(1)
    if not applied:
        behind = ", ".join(f"{i} at v{v}" for i, v in seen.items() if v < written.version)
        out.print(f"[bold red]version {written.version} not applied within {wait:g} s[/]: {behind}")
        raise typer.Exit(2)
    out.print(f"[green]applied[/]: version {written.version} on {len(seen)} instance(s)")


def _confirm(profile: Profile) -> None:
    from concertops.cli.confirm import confirmed
    from concertops.engine.remediate import ConfirmationRefused

    if not confirmed(profile, "Change these settings?"):
        raise ConfirmationRefused("not confirmed: nothing was changed")


def _open() -> tuple[Profile, sa.Engine]:
    from concertops.sources.database import open_engine

    profile = OPTIONS.load_profile()
    return profile, open_engine(profile.database_url)


def _json(value: Any) -> None:
    import json

    from concertops.cli import console

    console.out().file.write(json.dumps(value, indent=2, default=str) + "\n")
