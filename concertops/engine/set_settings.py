"""``set_settings`` / ``set_setting`` on a service with runtime settings: one new settings version."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from concertops.contract import settings as specs
from concertops.engine import settings_ops
from concertops.engine.action_api import Context, Outcome, check_limits
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import is_mysql
from concertops.sources.instances import applied_versions


@dataclass
class SetSettings:
    """``set_settings`` (fixed values) or ``set_setting`` (one tunable value within the step's limits)."""

    step: Step
    changes: dict[str, specs.Value] = field(default_factory=dict)

    def _assignments(self) -> dict[str, Any]:
        config = self.step.config
        if isinstance(config, catalogue.SetSettingParams):
            return {config.setting: config.value}
        return dict(config.settings)

    def prepare(self, ctx: Context) -> str:
        self.changes = settings_ops.parse_assignments([f"{k}={v}" for k, v in self._assignments().items()])
        ctx.planned.update(self.changes)
        for name, value in self.changes.items():
            check_limits(self.step, name, value)
            if name == "db_pool_size" and isinstance(value, int):
                _pool_headroom(ctx, self.step, value)
        pending = settings_ops.preview(ctx.engine, self.changes)
        if not pending:
            return "already " + ", ".join(
                f"{n}={specs.BY_NAME[n].render(v)}" for n, v in self.changes.items()
            )
        return ", ".join(f"{c.name} {c.old} → {c.new}" for c in pending)

    def run(self, ctx: Context) -> Outcome:
        pending = settings_ops.preview(ctx.engine, self.changes)
        if not pending:
            return Outcome("ok", 0, "nothing to change: already in force")
        text = ", ".join(f"{c.name} {c.old} → {c.new}" for c in pending)
        if ctx.dry_run:
            for change in pending:
                ctx.would(
                    f"settings write: {change.name} = {change.new} (was {change.old}), as one new version"
                )
            return Outcome("ok", len(pending), f"would set {text}")
        written = settings_ops.write(ctx.engine, self.changes, ctx.operator, ctx.reason)
        return Outcome(
            "ok", len(written.changes), f"set {text} (version {written.version})", True, written.version
        )


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
