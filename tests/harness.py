"""Drive real backend instances from tests: HTTP calls, metrics, settings, broker outages."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import workers
from prometheus_client.parser import text_string_to_metric_families

from concertops.config import Profile
from concertops.contract import settings_store
from concertops.contract.schema import queue_token, reservation, seat
from concertops.contract.seeding import seed
from concertops.devstack import launcher, stack
from concertops.devstack.components import HOST, KAFKA_PORT

BOOTSTRAP = f"{HOST}:{KAFKA_PORT}"


def free_port_block(count: int, start: int | None = None) -> int:
    """The first port of ``count`` consecutive free ports on loopback, from this worker's own block on."""
    port = workers.port_block_start() if start is None else start
    while port < 60_000:
        if all(_free(p) for p in range(port, port + count)):
            return port
        port += count
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(
    check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.2, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Backend:
    engine: sa.Engine
    profile: Profile
    root: Path
    base_port: int
    instances: list[launcher.Running] = field(default_factory=list)
    first_index: int = 101

    # -- processes ----------------------------------------------------------------------------------
    def start(self, count: int = 2) -> None:
        self.instances = launcher.start(self.root, self.profile, count, self.base_port, self.first_index)

    def stop(self) -> None:
        launcher.stop(self.root, [r.name for r in self.instances])

    def restart(self) -> None:
        """A deploy: every instance stopped gracefully, then started again."""
        count = len(self.instances)
        self.stop()
        self.start(count)

    def dead(self) -> list[str]:
        """Instances that no longer answer, each with its exit status and the end of its log."""
        from concertops.devstack import processes

        found = []
        for run in self.instances:
            try:
                httpx.get(f"{run.url}/healthz", timeout=5)
                continue
            except httpx.HTTPError:
                pass
            status = processes.exit_status(run.pid)
            tail = processes.tail(processes.log_file(self.root, run.name), 3)
            found.append(f"{run.name} (exit status {status}): {tail}")
        return found

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.instances]

    # -- HTTP -------------------------------------------------------------------------------------------
    def post(
        self, path: str, body: dict[str, Any], token: str | None = None, instance: int = 0
    ) -> httpx.Response:
        headers = {"X-Queue-Token": token} if token else {}
        return httpx.post(f"{self.urls[instance]}{path}", json=body, headers=headers, timeout=30)

    def crowd(
        self, tokens: list[str], body: dict[str, Any], until: Callable[[dict[int, int]], bool], what: str
    ) -> dict[int, int]:
        """Every user of ``tokens`` posting ``body`` to /reservations again as soon as answered, spread over
        the instances, until ``until(statuses so far)`` holds: closed-loop load, so as many requests are in
        flight at every moment as there are users, however slow the machine. {status: count}."""
        statuses: dict[int, int] = {}
        guard, stop = threading.Lock(), threading.Event()

        def user(i: int) -> None:
            while not stop.is_set():
                code = self.post(
                    "/reservations", body, tokens[i], instance=i % len(self.instances)
                ).status_code
                with guard:
                    statuses[code] = statuses.get(code, 0) + 1

        threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(len(tokens))]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: until(dict(statuses)), timeout=120, interval=0.1, what=what)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        return statuses

    def active_token(self, user_id: int) -> str:
        return self.active_tokens([user_id])[0]

    def active_tokens(self, user_ids: list[int]) -> list[str]:
        """Issue one token per user, then wait until all are ACTIVE (one polling cycle at most)."""
        tokens = [str(self.post("/queue/tokens", {"user_id": u}).json()["token"]) for u in user_ids]
        pending = set(tokens)

        def all_active() -> bool:
            for token in list(pending):
                if httpx.get(f"{self.urls[0]}/queue/tokens/{token}").json()["status"] == "ACTIVE":
                    pending.discard(token)
            return not pending

        wait_for(all_active, timeout=20, what="queue tokens to become ACTIVE")
        return tokens

    def hold(self, user_id: int, schedule_id: int, seat_no: int) -> int:
        """Reserve one seat as a new ACTIVE user; the reservation id."""
        token = self.active_token(user_id)
        response = self.post("/reservations", {"schedule_id": schedule_id, "seat_no": seat_no}, token)
        assert response.status_code == 201, response.text
        return int(response.json()["reservationId"])

    def new_schedule(self, seats: int = 10) -> int:
        return seed(self.engine, 1, 1, seats).schedule_ids[0]

    # -- metrics ------------------------------------------------------------------------------------------
    def metric(self, name: str, labels: dict[str, str] | None = None, instance: int = 0) -> float:
        """Sum of the samples of ``name`` matching ``labels`` on one instance's /metrics."""
        text = httpx.get(f"{self.urls[instance]}/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    total += sample.value
        return total

    def metric_all(self, name: str, labels: dict[str, str] | None = None) -> list[float]:
        return [self.metric(name, labels, i) for i in range(len(self.instances))]

    # -- settings -----------------------------------------------------------------------------------------
    def set(self, **changes: object) -> int:
        """Write settings and wait until every instance exports the new version."""
        with self.engine.begin() as conn:
            version, _ = settings_store.write(conn, changes, "tests", "integration test")
        return self.wait_applied(version)

    def preset(self, name: str, **overrides: object) -> int:
        with self.engine.begin() as conn:
            version, _ = settings_store.apply_preset(conn, name, "tests", "integration test")
            if overrides:
                version, _ = settings_store.write(conn, overrides, "tests", "integration test")
        return self.wait_applied(version)

    def wait_applied(self, version: int) -> int:
        wait_for(
            lambda: all(v >= version for v in self.metric_all("booking_settings_version")),
            what=f"settings version {version} on every instance",
        )
        return version

    def release_holds(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                reservation.update().where(reservation.c.status == "HELD").values(status="CANCELLED")
            )
            conn.execute(
                seat.update().where(seat.c.status == "HELD").values(status="AVAILABLE", reservation_id=None)
            )

    def holds_due_in(self, count: int, minutes: int) -> int:
        """Like ``overdue_holds``, but every hold falls due ``minutes`` from now (database clock)."""
        return self.overdue_holds(count, minutes_overdue=-minutes)

    def overdue_holds(self, count: int, minutes_overdue: int = 5) -> int:
        """A schedule of ``count`` seats, every seat HELD by a hold past its expiry, written straight to the
        database (as a lost expiry event leaves them); the schedule id."""
        schedule_id = self.new_schedule(seats=count)
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO reservation (user_id, schedule_id, seat_no, seat_id, status,"
                    " held_expires_at, created_at, updated_at)"
                    " SELECT 500000 + seat_no, schedule_id, seat_no, seat_id, 'HELD',"
                    " NOW() - INTERVAL :m MINUTE, NOW() - INTERVAL :m + 5 MINUTE, NOW()"
                    " FROM seat WHERE schedule_id = :s"
                ),
                {"s": schedule_id, "m": minutes_overdue},
            )
            conn.execute(
                sa.text(
                    "UPDATE seat JOIN reservation r ON r.seat_id = seat.seat_id AND r.status = 'HELD'"
                    " SET seat.status = 'HELD', seat.reservation_id = r.reservation_id"
                    " WHERE seat.schedule_id = :s"
                ),
                {"s": schedule_id},
            )
        return schedule_id

    def unnotified_payments(self, count: int) -> list[int]:
        """``count`` seats sold two minutes ago whose ``payment.completed`` events never left (as after a
        direct-publish outage); their payment ids."""
        schedule = self.overdue_holds(count)
        with self.engine.begin() as conn:
            for statement in (
                "UPDATE reservation SET status = 'CONFIRMED', user_id = user_id + 100000"
                " WHERE schedule_id = :s",
                "UPDATE seat SET status = 'SOLD' WHERE schedule_id = :s",
                "INSERT INTO payment (reservation_id, user_id, amount, created_at) SELECT reservation_id,"
                " user_id, 1000, NOW() - INTERVAL 2 MINUTE FROM reservation WHERE schedule_id = :s",
            ):
                conn.execute(sa.text(statement), {"s": schedule})
        mine = (
            "SELECT payment_id FROM payment p JOIN reservation r USING (reservation_id)"
            " WHERE r.schedule_id = :s"
        )
        return [int(r[0]) for r in self.rows(mine, s=schedule)]

    def forget_payments(self, payment_ids: list[int]) -> None:
        """Remove payments a test left unannounced on purpose, so that no later test on this worker's
        database finds them (B-4's window of dropped events would not cover them, and its check would)."""
        with self.engine.begin() as conn:
            statement = sa.text("DELETE FROM payment WHERE payment_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            )
            conn.execute(statement, {"ids": payment_ids})

    def release_tokens(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                queue_token.update()
                .where(queue_token.c.status.in_(["ACTIVE", "WAITING"]))
                .values(status="EXPIRED")
            )

    # -- SQL ------------------------------------------------------------------------------------------------
    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())


class Broker:
    """The devstack's Tansu broker, stopped and started as an outage would.

    It keeps nothing across a restart (memory storage)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def stop(self) -> None:
        if not stack.stop_component(self.root, "kafka"):
            raise AssertionError("the Kafka broker was not started by this devstack, so tests cannot stop it")

    def start(self) -> None:
        state = stack.start_component(self.root, "kafka")
        assert state.ok, state.detail

    def committed(self, group: str, topic: str) -> int:
        """The offsets ``group`` has committed on ``topic``, summed over its partitions (OffsetFetch only:
        this reader never joins the group)."""
        from confluent_kafka import Consumer, TopicPartition

        reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
        try:
            partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
            offsets = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            return sum(max(tp.offset, 0) for tp in offsets)
        finally:
            reader.close()


def copies_on_topic(topic: str, wanted: Iterable[str], timeout_s: float = 60.0) -> dict[str, int]:
    """How many times each of ``wanted`` (event ids) is on ``topic``: an independent reader (not
    concertops's), from the beginning of every partition to the end its fetches report; ids are taken from
    the ``event_id`` header or the JSON payload's ``event_id``."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    counts = dict.fromkeys(wanted, 0)
    reader = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"test-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        left, deadline = set(partitions), time.monotonic() + timeout_s
        while left:
            assert time.monotonic() < deadline, f"{topic} not read to its end within {timeout_s} s"
            message = reader.poll(1.0)
            if message is None:
                continue
            if message.error():
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                left.discard(message.partition())
                continue
            headers = dict(message.headers() or [])
            event = (headers.get("event_id") or b"").decode() or json.loads(message.value()).get("event_id")
            if event in counts:
                counts[event] += 1
    finally:
        reader.close()
    return counts


def statuses(responses: Iterable[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts
