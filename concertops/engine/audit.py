"""The remediation audit: one row per step (and per settings change), written before the step runs and
finished after it, so a step that crashed or was interrupted still shows who started what, and when.

Rows never hold secrets: parameters and details go through ``redact_text``.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from concertops.contract.schema import remediation_audit, remediation_lock
from concertops.engine.runs import holds, lock_name, now, process_alive
from concertops.redact import redact_text

RESULTS = ("running", "ok", "failed", "refused", "interrupted", "skipped", "lock lost", "handed over")


def operator_name() -> str:
    """Who is acting: $CONCERTOPS_OPERATOR (set it in automation), else the login name."""
    try:
        return os.environ.get("CONCERTOPS_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):  # a container without a passwd entry
        return f"uid-{os.getuid()}"


@dataclass
class AuditLog:
    engine: sa.Engine
    runbook: str
    profile: str
    dry_run: bool
    operator: str = field(default_factory=operator_name)
    host: str = field(default_factory=socket.gethostname)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reason: str = ""  # the operator's --reason, on every row of the run

    def start(self, step: str, action: str, params: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            inserted = conn.execute(
                remediation_audit.insert().values(
                    run_id=self.run_id,
                    runbook=self.runbook,
                    step=step,
                    action=redact_text(action)[:200],
                    params=redact_text(json.dumps(params, sort_keys=True, default=str))[:2000],
                    operator=self.operator[:100],
                    host=self.host[:200],
                    profile=self.profile[:100],
                    dry_run=self.dry_run,
                    started_at=now(),
                    result="running",
                    detail="",
                    reason=redact_text(self.reason)[:500],
                )
            )
            key = inserted.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish(self, audit_id: int, result: str, affected: int | None = None, detail: str = "") -> None:
        assert result in RESULTS, result
        with self.engine.begin() as conn:
            conn.execute(
                remediation_audit.update()
                .where(remediation_audit.c.audit_id == audit_id)
                .values(
                    finished_at=now(), result=result, affected=affected, detail=redact_text(detail)[:1000]
                )
            )

    def record(
        self, step: str, action: str, params: dict[str, Any], result: str, affected: int | None, detail: str
    ) -> None:
        """A step that ran in one go (a settings change, a refusal): start and finish in one call."""
        self.finish(self.start(step, action, params), result, affected, detail)

    def close_dead_runs(self) -> list[dict[str, Any]]:
        """Rows of earlier runs of this runbook still "running": called with the runbook's lock held, so
        their process is gone (killed, or its machine lost). They become "interrupted (process gone)"; the
        committed batches they recorded stand. Returns one summary per dead run."""
        table = remediation_audit
        stale = (table.c.runbook == self.runbook, table.c.result == "running", table.c.run_id != self.run_id)
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(table).where(*stale).order_by(table.c.audit_id)).all()
            if not rows:
                return []
            conn.execute(
                table.update()
                .where(*stale)
                .values(
                    result="interrupted",
                    finished_at=now(),
                    detail=f"process gone (found by run {self.run_id[:8]})",
                )
            )
            batches = conn.execute(
                sa.select(table.c.run_id, sa.func.count(), sa.func.coalesce(sa.func.sum(table.c.affected), 0))
                .where(table.c.run_id.in_({r.run_id for r in rows}), table.c.action.startswith("batch "))
                .group_by(table.c.run_id)
            ).all()
        committed = {run: (int(n), int(total)) for run, n, total in batches}
        return [
            {
                "run_id": r.run_id,
                "operator": r.operator,
                "host": r.host,
                "step": r.step,
                "started_at": r.started_at,
                "batches": committed.get(r.run_id, (0, 0))[0],
                "rows": committed.get(r.run_id, (0, 0))[1],
            }
            for r in rows
        ]


def query(
    engine: sa.Engine,
    runbook: str | None = None,
    since: datetime | None = None,
    operator: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest ``limit`` rows matching the filters, oldest first (as a log reads)."""
    table = remediation_audit
    stmt = sa.select(table)
    if runbook:
        stmt = stmt.where(table.c.runbook == runbook)
    if since:
        stmt = stmt.where(table.c.started_at >= since)
    if operator:
        stmt = stmt.where(table.c.operator == operator)
    if run_id:
        stmt = stmt.where(table.c.run_id.startswith(run_id))
    stmt = stmt.order_by(table.c.audit_id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        for run_id in {r["run_id"] for r in rows if r["result"] == "running"}:
            runbook = next(r["runbook"] for r in rows if r["run_id"] == run_id)
            gone = _why_gone(conn, runbook, run_id)
            if gone is None:
                continue
            batches, total = _committed(conn, run_id)
            for r in rows:
                if r["run_id"] == run_id and r["result"] == "running":
                    r["result"] = "interrupted"
                    r["detail"] = f"process gone ({gone}); it committed {batches} batch(es), {total} rows"
    return rows[::-1]


def _why_gone(conn: sa.Connection, runbook: str, run_id: str) -> str | None:
    """Why a run still "running" in the audit cannot be running any more, or None when it may be: its lock
    row is gone or names another run, or names a process of this host that does not exist. (Read from the
    store alone: the audit never waits on the service's server.)"""
    row = conn.execute(
        sa.select(remediation_lock).where(remediation_lock.c.name == lock_name(runbook))
    ).first()
    if row is None:
        return "its lock is free"
    if not holds(row.holder, run_id):
        return f"the lock is held by {row.holder}"
    if row.host == socket.gethostname() and not process_alive(row.pid):
        return f"pid {row.pid} no longer exists on {row.host}"
    return None


def _committed(conn: sa.Connection, run_id: str) -> tuple[int, int]:
    table = remediation_audit
    n, total = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(table.c.affected), 0)).where(
            table.c.run_id == run_id, table.c.action.startswith("batch "), table.c.result == "ok"
        )
    ).one()
    return int(n), int(total)
