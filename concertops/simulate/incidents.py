"""`concertops simulate incident ID`: drive the reference service into one incident of the manual, as the
manual tells it, and keep it going until the runbook's own detection sees it (or the time is up).

Each recipe causes the incident through the service's settings (only the incident's own, at the manual's
"current" legacy values), its HTTP API (users holding, paying, retrying), the contract's tables (a schedule
to book), and — for a Kafka outage — the broker this state directory started. Traffic that the detection
needs to see keeps running in the background until then.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from concertops.config import Profile
from concertops.engine.report import RunbookResult
from concertops.model.errors import UsageError
from concertops.simulate.service import Service, SimulationError

Say = Callable[[str], None]
LOCKS = ("lock_ttl_ms", "lock_wait_ms", "lock_retry_ms")


@dataclass
class Run:
    """What one simulation did, as it happens: actions said, background load, and how to end it."""

    say: Say
    actions: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    endings: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def did(self, text: str) -> None:
        self.actions.append(text)
        self.say(text)

    def keep_going(self, what: str, once: Callable[[], bool]) -> None:
        """Repeat ``once`` in the background until the incident is detected; it returns False when it has
        nothing left to do."""

        def loop() -> None:
            try:
                while not self.stop.is_set() and once():
                    pass
            except Exception as exc:  # the load failing is worth a line, not a crash of the simulation
                self.errors.append(f"{what}: {exc}")

        thread = threading.Thread(target=loop, name=what, daemon=True)
        thread.start()
        self.threads.append(thread)
        self.did(f"keeps {what} going until the incident is detected")

    def at_end(self, what: str, action: Callable[[], None]) -> None:
        self.endings.append((what, action))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        for what, action in reversed(self.endings):
            action()
            self.did(what)


@dataclass(frozen=True)
class Recipe:
    id: str
    title: str
    story: str  # what the manual says happens, in one sentence
    cause: Callable[[Service, Run], None]
    # The signals that show the harm itself: detected means one of them is not OK (a setting that merely
    # allows the incident, like A-3's polling, is a finding from the first second and proves nothing).
    symptoms: tuple[str, ...]

    def seen(self, result: RunbookResult) -> bool:
        return any(f.status.name != "OK" for f in result.findings if f.signal in self.symptoms)


def _users(count: int) -> list[int]:
    """User ids of this run only: a hold or a token of an earlier run never collides with them."""
    base = random.randint(1, 900) * 1_000_000
    return [base + i for i in range(1, count + 1)]


# -- Part A --------------------------------------------------------------------------------------------------
def _fresh_queue(svc: Service, run: Run) -> None:
    expired = svc.expire_queue()
    if expired:
        run.did(f"queue emptied first: {expired} tokens of earlier runs expired")


def _a1(svc: Service, run: Run) -> None:
    _fresh_queue(svc, run)
    svc.settings((*LOCKS, "db_pool_size"), db_query_delay_ms=400, max_active_tokens=200)
    run.did("legacy pool of 10 and seat locks (wait 3 s), 400 ms added to the seat query inside the lock")
    schedule = svc.new_schedule(seats=200)
    tokens = svc.active_tokens(_users(60))
    run.did(f"60 users let in at once (max_active_tokens=200) on schedule {schedule}")
    seats = itertools.count(1)

    def burst() -> bool:
        seat_no = next(seats)
        if seat_no > 200:
            return False
        answers = svc.at_once(len(tokens), lambda i: svc.hold(tokens[i], schedule, seat_no, i).status_code)
        run.say(f"all 60 on seat {seat_no} at once: {_mix(answers)}")
        return True

    run.keep_going("all 60 users on the same seat", burst)


def _a2(svc: Service, run: Run) -> None:
    _fresh_queue(svc, run)
    schedule = svc.new_schedule(seats=2)
    users = _users(3)
    svc.hold_each(users[:2], schedule)
    run.did(f"schedule {schedule} sold out: both of its 2 seats held")
    retrying = svc.active_tokens(users[2:])[0]

    def retry() -> bool:
        answers = svc.at_once(8, lambda i: svc.hold(retrying, schedule, 1 + i % 2, i).status_code)
        return set(answers) <= {409, 429} or _unexpected(run, "retrying a sold-out schedule", answers)

    run.keep_going("a user retrying the sold-out schedule (8 at a time)", retry)


def _a3(svc: Service, run: Run) -> None:
    _fresh_queue(svc, run)
    svc.settings(("event_activation", "queue_activation_interval_s"), max_active_tokens=1)
    run.did("legacy queue: activation polled every 5 s, no event activation; max_active_tokens=1")
    users = _users(11)
    svc.active_tokens(users[:1])
    svc.issue_tokens(users[1:])
    run.did("1 user ACTIVE, 10 more WAITING behind it")


# -- Part B --------------------------------------------------------------------------------------------------
def _outage(svc: Service, run: Run) -> None:
    from concertops.devstack import outage

    bootstrap = svc.profile.kafka_bootstrap_servers or ""
    if not bootstrap:
        raise UsageError(
            "no Kafka broker configured", "set kafka_bootstrap_servers or CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS"
        )
    child = outage.recorded_broker()

    def back() -> None:
        outage.start_broker(child, bootstrap)
        svc.wait_metric(
            "kafka_producer_connected",
            lambda v: bool(v) and min(v) == 1,
            "producers reconnected",
            timeout_s=30,
        )

    # Registered first: whatever fails after this point, the broker is started again.
    run.at_end(
        "outage over: broker started again (memory storage: it starts empty) and producers reconnected", back
    )
    outage.stop_broker(bootstrap)
    run.did(f"Kafka broker at {bootstrap} stopped (pid {child.pid})")


def _paying(svc: Service, run: Run, holds: list[tuple[int, int]]) -> Callable[[], bool]:
    queue = iter(enumerate(holds))
    tally: dict[int, int] = {}

    def pay() -> bool:
        step = next(queue, None)
        if step is None:
            return False
        i, (reservation_id, user) = step
        code = svc.pay(reservation_id, user, instance=i)
        tally[code] = tally.get(code, 0) + 1
        run.say(f"payments so far: {_mix(tally)}")
        return True

    return pay


def _b1(svc: Service, run: Run) -> None:
    # A short send timeout so each failed payment answers in 0.5 s; the producer never gives up on the
    # broker (no "disconnected" state), as the manual's direct publish keeps trying.
    _fresh_queue(svc, run)
    svc.settings(("publish_mode",), kafka_send_timeout_ms=500, producer_disconnect_after_s=300)
    run.did("legacy publishing: payments send payment.completed directly, inside the request")
    holds = svc.hold_each(_users(40), svc.new_schedule(seats=40))
    run.did("40 users hold a seat each, about to pay")
    _outage(svc, run)
    run.keep_going(
        "payments during the outage (each one committed, then answered 500)", _paying(svc, run, holds)
    )


def _b2(svc: Service, run: Run) -> None:
    from concertops.contract.schema import reservation, seat

    svc.settings(("expiry_consumer_mode", "expiry_sweep_interval_s"))
    run.did("legacy expiry: blocking consumer (commits, then sleeps), no sweep")
    schedule = svc.new_schedule(seats=40)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    users = iter(_users(40))
    with svc.engine.begin() as conn:
        seats = conn.execute(seat.select().where(seat.c.schedule_id == schedule)).all()
        for row in seats:
            made = conn.execute(
                reservation.insert().values(
                    user_id=next(users),
                    schedule_id=schedule,
                    seat_no=row.seat_no,
                    seat_id=row.seat_id,
                    status="HELD",
                    held_expires_at=now - timedelta(minutes=5),
                    created_at=now - timedelta(minutes=10),
                    updated_at=now - timedelta(minutes=10),
                )
            )
            conn.execute(
                seat.update()
                .where(seat.c.seat_id == row.seat_id)
                .values(status="HELD", reservation_id=made.inserted_primary_key[0])  # type: ignore[index]
            )
    run.did(
        f"{len(seats)} holds on schedule {schedule} as a consumer restart leaves them: HELD 5 minutes past "
        "their expiry, their expiry messages consumed and gone"
    )


def _b3(svc: Service, run: Run) -> None:
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


def _b4(svc: Service, run: Run) -> None:
    _fresh_queue(svc, run)
    svc.settings(("publish_mode", "producer_disconnected"), producer_disconnect_after_s=1)
    run.did(
        "legacy producer: direct publishing that drops events while disconnected (skip); "
        "disconnected after 1 s"
    )
    holds = svc.hold_each(_users(20), svc.new_schedule(seats=20))
    run.did("20 users hold a seat each, about to pay")
    _outage(svc, run)
    svc.wait_metric("kafka_producer_connected", lambda v: bool(v) and max(v) == 0, "producers disconnected")
    run.did("every instance's producer reports disconnected")
    run.keep_going(
        "payments while disconnected (each answered 201, its event dropped)", _paying(svc, run, holds)
    )


def _mix(answers: dict[int, int]) -> str:
    return ", ".join(f"{code} x{count}" for code, count in sorted(answers.items()))


def _unexpected(run: Run, what: str, answers: dict[int, int]) -> bool:
    run.errors.append(f"{what} answered {_mix(answers)}")
    return False


RECIPES: dict[str, Recipe] = {
    r.id: r
    for r in (
        Recipe(
            "A-1",
            "lock contention drains the DB pool",
            "50+ users on the same seats while every seat query is slow",
            _a1,
            ("lock_errors", "pool_timeouts"),
        ),
        Recipe(
            "A-2",
            "sell-out 409 floods",
            "users keep retrying a schedule that is sold out",
            _a2,
            ("conflict_share", "conflict_rate"),
        ),
        Recipe(
            "A-3",
            "queue activation delayed by polling",
            "tokens wait for the next polling cycle",
            _a3,
            ("oldest_waiting",),
        ),
        Recipe(
            "B-1",
            "Kafka outage fails payments",
            "the broker goes away while payments publish directly",
            _b1,
            ("producer_errors", "payment_server_errors"),
        ),
        Recipe(
            "B-2",
            "lost expiry events hold seats",
            "expiry messages lost: holds never expire",
            _b2,
            ("overdue_holds",),
        ),
        Recipe(
            "B-3",
            "default pool exhausted",
            "idle connections pile up against a pool of 10",
            _b3,
            ("idle_connections",),
        ),
        Recipe(
            "B-4",
            "events dropped while disconnected",
            "payments succeed while their events are dropped",
            _b4,
            ("skipped_events",),
        ),
    )
}


@dataclass
class Outcome:
    incident: str
    actions: list[str]
    detected: bool
    seconds_to_detect: float | None
    seconds: float
    result: RunbookResult | None
    errors: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "title": RECIPES[self.incident].title,
            "actions": self.actions,
            "detected": self.detected,
            "seconds_to_detect": None if self.seconds_to_detect is None else round(self.seconds_to_detect, 1),
            "seconds": round(self.seconds, 1),
            "status": self.result.status.name if self.result else None,
            "findings": [f.as_json() for f in self.result.findings if f.status.name != "OK"]
            if self.result
            else [],
            "load_errors": self.errors,
        }


def recipe(incident: str) -> Recipe:
    """The recipe of ``incident``, written as the runbooks accept it (B-3, b3, B3)."""
    from concertops.runbooks.pages import normalise_id

    try:
        return RECIPES[normalise_id(incident)]
    except (ValueError, KeyError):
        raise UsageError(f"unknown incident '{incident}'", f"use one of: {', '.join(RECIPES)}") from None


def simulate(
    profile: Profile,
    incident: str,
    until_detected: bool,
    timeout_s: float,
    say: Say,
    waiting: Callable[[float, RunbookResult | None], None] = lambda _s, _r: None,
) -> Outcome:
    """Cause ``incident`` and watch its runbook's detection: stop at the first non-OK check when
    ``until_detected``, else keep the incident going for ``timeout_s``. Whatever happens, the background load
    stops and the incident's endings run (a stopped broker is started again)."""
    from concertops.engine.check import run_check
    from concertops.runbooks.registry import get

    chosen = recipe(incident)
    runbook = get(chosen.id)
    svc = Service(profile)
    run = Run(say)
    started = time.monotonic()
    detected_at: float | None = None
    last: RunbookResult | None = None
    try:
        chosen.cause(svc, run)
        deadline = started + timeout_s
        while True:
            elapsed = time.monotonic() - started
            last = run_check(profile, [runbook], timeout_s=5.0).runbooks[0]
            if detected_at is None and chosen.seen(last):
                detected_at = time.monotonic() - started
                if until_detected:
                    break
            if run.errors and not any(t.is_alive() for t in run.threads) and detected_at is None:
                raise SimulationError(f"the incident's load stopped: {run.errors[0]}")
            if time.monotonic() >= deadline:
                break
            waiting(elapsed, last)
            time.sleep(1.0)
    finally:
        run.finish()
        svc.close()
    return Outcome(
        chosen.id,
        run.actions,
        detected_at is not None,
        detected_at,
        time.monotonic() - started,
        last,
        run.errors,
    )
