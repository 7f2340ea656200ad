"""What each remediation step does, by its ``action`` in the runbook page.

Every action is prepared first (everything it will do, limits checked, before anything runs), then run once,
either for real or dry: a dry SQL step runs inside a transaction that is rolled back, so its counts are exact;
a dry settings step reports the change it would make. Running an action when there is nothing to do changes
nothing and says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from concertops.config import Profile
from concertops.contract import names, settings_store
from concertops.contract import settings as specs
from concertops.contract.schema import queue_token, schedule, seat
from concertops.engine import settings_ops
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import actions as catalogue
from concertops.sources.database import is_mysql
from concertops.sources.instances import applied_versions


@dataclass(frozen=True)
class Outcome:
    result: str  # ok | skipped | failed
    affected: int
    detail: str
    changed: bool = False
    settings_version: int | None = None  # a version every instance must apply before verifying


@dataclass
class Progress:
    """What a batched step has committed so far: after an interrupt or a failure, the audit and the
    terminal say exactly this (the rows of committed batches stay changed; the open one rolled back)."""

    noun: str  # what a row's change is, e.g. "holds expired"
    batches: int = 0
    rows: int = 0
    in_flight: bool = False  # a batch's transaction is open right now

    def committed(self, rows: int) -> None:
        self.batches, self.rows, self.in_flight = self.batches + 1, self.rows + rows, False

    def describe(self) -> str:
        done = f"{self.batches} batch{'es' if self.batches != 1 else ''} committed, {self.rows} {self.noun}"
        return done + (f"; the {_ordinal(self.batches + 1)} rolled back" if self.in_flight else "")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Tally(Protocol):
    """A progress bar: ``advance`` by items done; ``close`` when the step ends."""

    def advance(self, done: int) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def advance(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Context:
    profile: Profile
    engine: sa.Engine
    dry_run: bool
    operator: str
    reason: str
    note: Callable[[str], None] = field(default=lambda _line: None)  # a line of progress for the user
    # A progress bar for a long step: (what, total or None) → Tally.
    progress: Callable[[str, int | None], Tally] = field(default=lambda _what, _total: _Silent())
    # Database connections of this run that no step may touch (the lock's, held for the whole run).
    own_connections: set[int] = field(default_factory=set)
    # --dry-run --print: what a dry step would send besides SQL (a KILL, a settings write, a message).
    would: Callable[[str], None] = field(default=lambda _line: None)
    # Settings earlier steps of the plan will have written by the time a later step runs (prepare order).
    planned: dict[str, Any] = field(default_factory=dict)
    # Raises LockLost when the run no longer holds its apply lock: called before each step and each batch.
    ensure_locked: Callable[[], None] = field(default=lambda: None)
    # One audit row per committed batch: (step id, batch number, rows changed, keys it covered).
    batch_committed: Callable[[str, int, int, dict[str, Any]], None] = field(
        default=lambda _step, _n, _rows, _keys: None
    )
    # The service's map (concertops.contract.service_map.ServiceMap): names, zone, deploy constants.
    shape: Any = None


class Action(Protocol):
    step: Step

    def prepare(self, ctx: Context) -> str:
        """What the step will do, concretely; raises UsageError when a limit forbids it."""

    def run(self, ctx: Context) -> Outcome: ...


# -- settings ------------------------------------------------------------------------------------------
@dataclass
class SetSettings:
    """``set_settings`` (fixed values) or ``set_setting`` (one tunable value within the step's limits)."""

    step: Step
    changes: dict[str, specs.Value] = field(default_factory=dict)

    def _assignments(self) -> dict[str, Any]:
        config = self.step.config
        if isinstance(config, catalogue.SetSetting):
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


def check_limits(step: Step, name: str, value: specs.Value) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        return
    low, high = getattr(step.config, "min", None), getattr(step.config, "max", None)
    if low is not None and value < low:
        raise UsageError(f"{step.id}: {name}={value} is below this step's limit {low}", f"use {low} or more")
    if high is not None and value > high:
        raise UsageError(
            f"{step.id}: {name}={value} is above this step's limit {high}", f"use {high} or less"
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


# -- sold-out schedules ---------------------------------------------------------------------------
@dataclass
class MarkSoldOut:
    """Mark schedules without a free seat, so the service refuses them before taking a lock or a connection.
    The service lifts the mark itself when a seat comes back (an expired hold)."""

    step: Step
    found: list[int] = field(default_factory=list)

    def _candidates(self, conn: sa.Connection, limit: int) -> list[int]:
        available = sa.func.sum(sa.case((seat.c.status == "AVAILABLE", 1), else_=0))
        full = sa.select(seat.c.schedule_id).group_by(seat.c.schedule_id).having(available == 0).subquery()
        return list(
            conn.execute(
                sa.select(schedule.c.schedule_id)
                .where(
                    schedule.c.schedule_id.in_(sa.select(full.c.schedule_id)), schedule.c.sold_out.is_(False)
                )
                .order_by(schedule.c.schedule_id)
                .limit(limit)
            ).scalars()
        )

    def prepare(self, ctx: Context) -> str:
        limit = self.step.config.max_schedules
        with ctx.engine.connect() as conn:
            self.found = self._candidates(conn, limit + 1)
        if not self.found:
            return "no unmarked sold-out schedule"
        if len(self.found) > limit:
            raise UsageError(
                f"{self.step.id}: more than {limit} schedules to mark",
                "raise --max-schedules if that is right",
            )
        return f"mark {len(self.found)} schedule(s) sold out: {', '.join(map(str, self.found[:10]))}"

    def run(self, ctx: Context) -> Outcome:
        limit = self.step.config.max_schedules
        conn = ctx.engine.connect()
        try:
            tx = conn.begin()
            ids = self._candidates(conn, limit)
            marked = 0
            if ids:
                # Still full at this moment: a seat freed since prepare() keeps its schedule on sale.
                available = sa.func.sum(sa.case((seat.c.status == "AVAILABLE", 1), else_=0))
                still_full = (
                    sa.select(seat.c.schedule_id)
                    .where(seat.c.schedule_id.in_(ids))
                    .group_by(seat.c.schedule_id)
                    .having(available == 0)
                )
                full_now = list(conn.execute(still_full).scalars())
                if full_now:
                    marked = conn.execute(
                        schedule.update()
                        .where(schedule.c.schedule_id.in_(full_now), schedule.c.sold_out.is_(False))
                        .values(sold_out=True)
                    ).rowcount
            if ctx.dry_run:
                tx.rollback()
                return Outcome("ok", marked, f"would mark {marked} schedule(s) sold out (rolled back)")
            tx.commit()
        finally:
            conn.close()
        if not marked:
            return Outcome("ok", 0, "nothing to mark: no unmarked sold-out schedule")
        return Outcome("ok", marked, f"marked {marked} schedule(s) sold out", changed=True)


# -- activate waiting tokens now ------------------------------------------------------------------
@dataclass
class ActivateWaiting:
    """Activate the oldest WAITING tokens now, within ``max_active_tokens`` (never beyond it), holding the
    service's own activator lock so the two never activate at once."""

    step: Step

    blocked: str = ""  # why the step, as prepared, changes nothing although its signal fires

    def _free_slots(self, conn: sa.Connection, ceiling: int | None = None) -> tuple[int, int, int, int]:
        values, _version = settings_store.current(conn)
        active, waiting = (
            conn.execute(
                sa.select(sa.func.count()).select_from(queue_token).where(queue_token.c.status == status)
            ).scalar_one()
            for status in ("ACTIVE", "WAITING")
        )
        limit = self.step.config.max_tokens
        most = int(values["max_active_tokens"]) if ceiling is None else ceiling
        free = max(0, min(most - int(active), int(waiting), limit))
        return free, int(active), int(waiting), most

    def prepare(self, ctx: Context) -> str:
        # A raise of max_active_tokens earlier in the same plan is in force by the time this step runs.
        raised = ctx.planned.get("max_active_tokens")
        with ctx.engine.connect() as conn:
            free, active, waiting, most = self._free_slots(conn, raised if isinstance(raised, int) else None)
        if not waiting:
            return "no WAITING token"
        if not free:
            self.blocked = (
                f"activates none of {waiting} WAITING token(s): max_active_tokens={most} is filled by "
                f"{active} ACTIVE; let more in with a3 --raise-tokens N (the queue then drains N - {active})"
            )
            return self.blocked
        return f"activate {free} of {waiting} WAITING token(s) now ({active} ACTIVE of {most})"

    def run(self, ctx: Context) -> Outcome:
        import redis

        if not ctx.profile.redis_url:
            raise UsageError(
                "activating tokens needs Redis (the activator's lock)", "set redis_url in the profile"
            )
        lock = redis.Redis.from_url(ctx.profile.redis_url).lock(
            names.ACTIVATOR_LOCK, timeout=30, blocking_timeout=10
        )
        if not lock.acquire():
            return Outcome("failed", 0, "the service's activator kept its lock for 10 s; try again")
        try:
            return self._activate(ctx)
        finally:
            lock.release()

    def _activate(self, ctx: Context) -> Outcome:
        from datetime import timedelta

        from concertops.engine.runs import now

        with ctx.engine.connect() as conn:
            tx = conn.begin()
            free, _active, waiting, _most = self._free_slots(conn)
            activated = 0
            if free:
                values, _version = settings_store.current(conn)
                ids = list(
                    conn.execute(
                        sa.select(queue_token.c.token_id)
                        .where(queue_token.c.status == "WAITING")
                        .order_by(queue_token.c.created_at, queue_token.c.token_id)
                        .limit(free)
                    ).scalars()
                )
                at = now()
                activated = conn.execute(
                    queue_token.update()
                    .where(queue_token.c.token_id.in_(ids), queue_token.c.status == "WAITING")
                    .values(
                        status="ACTIVE",
                        activated_at=at,
                        expires_at=at + timedelta(seconds=int(values["active_token_ttl_s"])),
                    )
                ).rowcount
            if ctx.dry_run:
                tx.rollback()
                return Outcome(
                    "ok", activated, f"would activate {activated} of {waiting} WAITING (rolled back)"
                )
            tx.commit()
        if not activated and waiting:
            # Not a success: the queue still waits. Say why and what would change it.
            return Outcome("skipped", 0, self.blocked or "no free ACTIVE slot: raise max_active_tokens")
        if not activated:
            return Outcome("ok", 0, "nothing to activate")
        return Outcome("ok", activated, f"activated {activated} of {waiting} WAITING token(s)", changed=True)


def implementations() -> dict[type[Any], Callable[[Step], Action]]:
    """Each parameter model of the action catalogue → the class that carries it out."""
    from concertops.engine.dlq_replay import ReplayDlq
    from concertops.engine.force_expire import ForceExpire
    from concertops.engine.kill_idle import KillIdle
    from concertops.engine.republish import ListDoublePayments, RepublishPayments

    return {
        catalogue.SetSettings: SetSettings,
        catalogue.SetSetting: SetSettings,
        catalogue.MarkSoldOut: MarkSoldOut,
        catalogue.ActivateWaiting: ActivateWaiting,
        catalogue.ForceExpire: ForceExpire,
        catalogue.ReplayDlq: ReplayDlq,
        catalogue.KillIdle: KillIdle,
        catalogue.RepublishPayments: RepublishPayments,
        catalogue.ListDoublePayments: ListDoublePayments,
    }


@dataclass
class NotOnThisService:
    """A step the service cannot take (it lacks what the step acts through): planned, never run."""

    step: Step
    why: str
    blocked: str = ""

    def prepare(self, ctx: Context) -> str:
        self.blocked = f"not available on {ctx.shape.name}: {self.why}"
        return self.blocked

    def run(self, ctx: Context) -> Outcome:
        return Outcome("skipped", 0, self.blocked)


def mapped_implementations(shape: Any) -> dict[type[Any], Callable[[Step], Action]]:
    """The same catalogue on a service described by its service map (not the reference schema): its own
    names and keys, its Redis queue, hand-offs for what only a deploy changes."""
    from functools import partial

    from concertops.engine.activate_redis import RedisActivate
    from concertops.engine.force_expire_mapped import MappedForceExpire
    from concertops.engine.handoff import HandOff
    from concertops.engine.kill_idle import KillIdle
    from concertops.engine.republish_mapped import EnvelopeRepublish

    def lacks(why: str) -> Callable[[Step], Action]:
        return partial(NotOnThisService, why=why)

    settings: Callable[[Step], Action] = SetSettings if shape.acts.runtime_settings else HandOff
    return {
        catalogue.SetSettings: settings,
        catalogue.SetSetting: settings,
        catalogue.MarkSoldOut: lacks("it has no sold-out mark (a seat is taken by its reservation)"),
        catalogue.ActivateWaiting: RedisActivate
        if shape.queue.store == "redis"
        else lacks("its queue is not in Redis sorted sets"),
        catalogue.ForceExpire: MappedForceExpire,
        catalogue.ReplayDlq: lacks("it has no dead-letter topic"),
        catalogue.KillIdle: KillIdle,
        catalogue.RepublishPayments: EnvelopeRepublish
        if shape.kafka.envelope == "step10" and not shape.acts.outbox
        else lacks("re-publishing is built for an outbox or the step10 envelope"),
        catalogue.ListDoublePayments: lacks("a payment cannot be charged twice (reservation key is unique)"),
    }


def action_for(step: Step, shape: Any = None) -> Action:
    """The implementation of the step's action, found by its parameter model, for the service's shape
    (None: the reference schema)."""
    from concertops.contract.service_map import has_reference_schema

    table = (
        implementations() if shape is None or has_reference_schema(shape) else mapped_implementations(shape)
    )
    try:
        return table[type(step.config)](step)
    except KeyError:
        raise UsageError(f"{step.id}: action {step.action!r} has no implementation") from None
