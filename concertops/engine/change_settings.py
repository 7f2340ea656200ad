"""``set_settings`` (fixed values) and ``set_setting`` (one tunable value within the step's limits): one
action for every service. Where the service re-reads runtime settings (the map's
``acts.runtime_settings``) the change is one new settings version; elsewhere it is a deploy, handed over
(``concertops.engine.handoff``) with the map's ``deploy_constants`` as the values now.

gather reads the values now (the settings table, or the map); decide is pure: the step's values held to its
limits and compared with them; act writes, or hands over, only what decide found different.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from concertops.contract import settings as specs
from concertops.engine import handoff, settings_ops
from concertops.engine.action_api import Context, Outcome, check_limits
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import is_mysql
from concertops.sources.instances import applied_versions


@dataclass(frozen=True)
class Current:
    """Each setting's value now, and where it lives when only a deploy changes it."""

    values: dict[str, Any]
    where: dict[str, str] = field(default_factory=dict)  # deploy constants only
    deployed: bool = False


def wanted(step: Step) -> dict[str, specs.Value]:
    config = step.config
    pairs = (
        {config.setting: config.value}
        if isinstance(config, catalogue.SetSettingParams)
        else dict(config.settings)
    )
    return settings_ops.parse_assignments([f"{k}={v}" for k, v in pairs.items()])


def decide(step: Step, values: dict[str, specs.Value], current: Current) -> list[handoff.Change]:
    """The changes to make, each within the step's limits (pure); a value already in force is none."""
    changes = []
    for name, value in values.items():
        check_limits(step, name, value)
        if name not in current.values:
            where = "not in the service map's deploy_constants: find where it lives"
            changes.append(handoff.Change(name, value, "?", where))
        elif current.values[name] != value:
            changes.append(handoff.Change(name, value, current.values[name], current.where.get(name, "")))
    return changes


@dataclass
class ChangeSettings:
    step: Step
    values: dict[str, specs.Value] = field(default_factory=dict)
    changes: list[handoff.Change] = field(default_factory=list)

    def gather(self, ctx: Context) -> Current:
        if ctx.shape.acts.runtime_settings:
            values, _version = settings_ops.current(ctx.engine)
            return Current(dict(values))
        constants = ctx.shape.deploy_constants
        return Current(
            {n: c.value for n, c in constants.items()}, {n: c.where for n, c in constants.items()}, True
        )

    def prepare(self, ctx: Context) -> str:
        self.values = wanted(self.step)
        ctx.planned.update(self.values)
        current = self.gather(ctx)
        self.changes = decide(self.step, self.values, current)
        size = self.values.get("db_pool_size")
        if isinstance(size, int) and not current.deployed:
            _pool_headroom(ctx, self.step, size)
        if current.deployed:
            if ctx.profile.handoff_hook:
                handoff.check_template(ctx.profile.handoff_hook)
            if not self.changes:
                shown = ", ".join(f"{k}={handoff.shown(v)}" for k, v in self.values.items())
                return f"already {shown} (service map)"
            how = "run the hand-off hook for" if ctx.profile.handoff_hook else "hand over (a deploy)"
            return f"{how}: " + "; ".join(c.describe() for c in self.changes)
        if not self.changes:
            return "already " + ", ".join(f"{n}={specs.BY_NAME[n].render(v)}" for n, v in self.values.items())
        return ", ".join(_rendered(c) for c in self.changes)

    def run(self, ctx: Context) -> Outcome:
        if not ctx.shape.acts.runtime_settings:
            return handoff.hand_over(ctx, self.step, self.changes)
        # Only what the plan decided, and only where it is still not in force.
        decided = {c.setting: c.value for c in self.changes}
        pending = settings_ops.preview(ctx.engine, decided)
        if not pending:
            return Outcome("ok", 0, "nothing to change: already in force")
        text = ", ".join(f"{c.name} {c.old} → {c.new}" for c in pending)
        if ctx.dry_run:
            for change in pending:
                ctx.would(
                    f"settings write: {change.name} = {change.new} (was {change.old}), as one new version"
                )
            return Outcome("ok", len(pending), f"would set {text}")
        written = settings_ops.write(ctx.engine, decided, ctx.operator, ctx.reason)
        return Outcome(
            "ok", len(written.changes), f"set {text} (version {written.version})", True, written.version
        )


def _rendered(change: handoff.Change) -> str:
    spec = specs.BY_NAME[change.setting]
    return f"{change.setting} {spec.render(change.current)} → {spec.render(change.value)}"


def _pool_headroom(ctx: Context, step: Step, size: int) -> None:
    """Refuse a pool size whose total over the live instances would eat the server's connection headroom."""
    if not is_mysql(ctx.engine):
        return  # SQLite has no connection limit to protect
    with ctx.engine.connect() as conn:
        max_connections = int(conn.execute(sa.text("SELECT @@max_connections")).scalar_one())
    instances = max(1, len(applied_versions(ctx.profile)))
    share = float(getattr(step.config, "max_share_of_max_connections", None) or 0.5)
    allowed = math.floor(max_connections * share / instances)
    if size > allowed:
        raise UsageError(
            f"{step.id}: a pool of {size} on {instances} instance(s) is {size * instances} connections, over "
            f"{share:.0%} of max_connections={max_connections} (the rest is reserve for everything else)",
            f"use --pool-size {allowed} or less, or raise max_connections first",
        )
