"""What every incident recipe is made of: the run it records, the recipe itself, and the steps several
recipes share (users of their own, an empty queue, a broker outage, payments in the background)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from concertops.engine.report import RunbookResult
from concertops.model.errors import UsageError
from concertops.simulate.service import Service

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


def users(count: int) -> list[int]:
    """User ids of this run only: a hold or a token of an earlier run never collides with them."""
    base = random.randint(1, 900) * 1_000_000
    return [base + i for i in range(1, count + 1)]


def fresh_queue(svc: Service, run: Run) -> None:
    expired = svc.expire_queue()
    if expired:
        run.did(f"queue emptied first: {expired} tokens of earlier runs expired")


def outage(svc: Service, run: Run) -> None:
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


def paying(svc: Service, run: Run, holds: list[tuple[int, int]]) -> Callable[[], bool]:
    queue = iter(enumerate(holds))
    tally: dict[int, int] = {}

    def pay() -> bool:
        step = next(queue, None)
        if step is None:
            return False
        i, (reservation_id, user) = step
        code = svc.pay(reservation_id, user, instance=i)
        tally[code] = tally.get(code, 0) + 1
        run.say(f"payments so far: {mix(tally)}")
        return True

    return pay


def mix(answers: dict[int, int]) -> str:
    return ", ".join(f"{code} x{count}" for code, count in sorted(answers.items()))


def unexpected(run: Run, what: str, answers: dict[int, int]) -> bool:
    run.errors.append(f"{what} answered {mix(answers)}")
    return False
