"""`concertops doctor` holds the profile's service map against the live service: on a database, Redis and
broker laid out as production has them, and on the twin, which lacks what the step10 map names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cli_runner import CONCERTOPS, CliRunner
from harness import Backend
from prod_shape import (
    create_database,
    create_topics_and_groups,
    drop_database,
    drop_user,
    idle_connections,
    seed_holds,
)

from concertops.devstack.components import REDIS_PORT
from concertops.model.signals import Signal

REDIS_DB = 9  # production's queue keys, away from the twin's


@pytest.fixture(scope="module")
def production(production_broker: str) -> Iterator[dict[str, str]]:
    """Production's shape: its database, its Redis queue keys, its topics and consumer groups."""
    name, url = create_database()
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    seconds, _micros = client.time()
    issued = seconds * 1000 - 30_000  # 260 WAITING tokens, the oldest issued 30 s ago
    client.zadd("queue:waiting", {f"token-{i}": issued + i for i in range(260)})
    client.zadd("queue:active", {"token-active": issued})
    create_topics_and_groups(production_broker)
    yield {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": production_broker,
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
    }
    client.flushdb()
    drop_database(name)


def _doctor(cli: CliRunner, environment: dict[str, str]) -> tuple[int, dict[str, dict]]:
    done = cli("doctor", "--json", env=environment)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, {c["source"]: c for c in json.loads(done.stdout)["checks"]}


def test_the_step10_map_holds_on_production_shape(
    cli: CliRunner, production: dict[str, str], tmp_path: Path
) -> None:
    environment = {**production, "CONCERTOPS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite'}"}
    code, checks = _doctor(cli, environment)
    for row in ("map: database", "map: redis", "map: kafka"):
        assert checks[row]["ok"], checks[row]
    assert "queue:waiting zset of 260" in checks["map: redis"]["detail"]
    # Everything answers, but concertops's own store is not there yet: the one row failing names the fix.
    assert code == 3 and [c for c, row in checks.items() if not row["ok"]] == ["state store"], checks
    assert checks["state store"]["fix"].startswith("run `concertops state init`"), checks["state store"]
    assert cli("state", "init", env=environment).returncode == 0
    code, checks = _doctor(cli, environment)
    assert checks["state store"]["ok"] and checks["state store"]["detail"] == "the profile's state_url"
    assert code == 0, checks


def test_the_step10_map_on_the_twin_names_each_missing_column(cli: CliRunner, booking: Backend) -> None:
    environment = {
        "CONCERTOPS_DATABASE_URL": str(booking.profile.database_url),
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": "",
        "CONCERTOPS_REDIS_URL": "",
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
    }
    code, checks = _doctor(cli, environment)
    assert code == 3
    row = checks["map: database"]
    assert not row["ok"]
    for line in (
        "column reservation.reservationId missing (tables.reservation.key)",
        "column reservation.expiresAt missing (tables.reservation.columns.expires_at)",
        "column payment.paymentId missing (tables.payment.key)",
    ):
        assert line in row["detail"], row["detail"]
    assert "service map" in row["fix"] and "step10.yml" in row["fix"]
    # A map that names columns the live service lacks applies nothing: one line naming the map and the gap.
    applied = cli("b2", "--apply", "--yes", env=environment)
    assert applied.returncode == 3, applied.stdout
    assert "step10.yml: column reservation.reservationId missing" in applied.stderr
    assert "nothing was applied" in applied.stderr and len(applied.stderr.strip().splitlines()) == 1


def test_a_redis_key_of_the_wrong_type_and_a_missing_group_are_named(
    cli: CliRunner, production: dict[str, str], tmp_path: Path
) -> None:
    import yaml

    from concertops.contract import service_map

    raw = yaml.safe_load((service_map.maps_dir() / "step10.yml").read_text())
    raw["kafka"]["groups"]["expiry"]["group"] = "no-such-group"
    mine = tmp_path / "map.yml"
    mine.write_text(yaml.safe_dump(raw))
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.delete("queue:active")
    client.set("queue:active", "oops")
    try:
        code, checks = _doctor(cli, {**production, "CONCERTOPS_SERVICE_MAP": str(mine)})
        # A-3 writes the queue's keys: a key of another type stops it before any step (hand-offs too).
        applied = cli("a3", "--apply", "--yes", env={**production, "CONCERTOPS_SERVICE_MAP": str(mine)})
        assert applied.returncode == 3, applied.stdout
        assert "key queue:active is a string" in applied.stderr, applied.stderr
        assert "nothing was applied" in applied.stderr and len(applied.stderr.strip().splitlines()) == 1
        assert client.zcard("queue:waiting") == 260 and client.type("queue:active") == b"string"
    finally:
        client.delete("queue:active")
        client.zadd("queue:active", {"token-active": 1_700_000_000_000})
    assert code == 3
    assert (
        "key queue:active is a string, the map says zset (queue.active.type)"
        in checks["map: redis"]["detail"]
    )
    assert "consumer group no-such-group missing (kafka.groups.expiry)" in checks["map: kafka"]["detail"]


def test_a_map_that_does_not_parse_is_one_line_and_exit_3(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nzone: Mars/Olympus\nmetrics: false\ntables: {}\nqueue: {store: sql, table: t}\n")
    for command in (("doctor",), ("config", "show")):
        done = cli(*command, env={"CONCERTOPS_SERVICE_MAP": str(bad)})
        assert done.returncode == 3, done.stdout
        assert str(bad) in done.stderr and "field" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


class _SlowService:
    """Production's HTTP API as a probe sees it from outside: a GET that answers after ``delay`` seconds
    (its pool dry, the request waits for a connection), with ``status``."""

    def __init__(self, delay: float, status: int = 200) -> None:
        import http.server
        import threading

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                time.sleep(owner.delay)
                # As production: its API under /api, nothing else (no /healthz).
                self.send_response(owner.status if self.path.startswith("/api/") else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"dates": []}')

            def log_message(self, *_args: object) -> None:
                pass

        self.delay, self.status, self.paths = delay, status, []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_doctor_asks_a_mapped_service_the_maps_probe_path_not_healthz(
    cli: CliRunner, production: dict[str, str], tmp_path: Path
) -> None:
    service = _SlowService(delay=0)
    environment = {
        **production,
        "CONCERTOPS_BACKEND_URLS": service.url,
        "CONCERTOPS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite'}",
    }
    try:
        assert cli("state", "init", env=environment).returncode == 0
        code, checks = _doctor(cli, environment)
    finally:
        service.close()
    backend = checks["backend"]
    assert backend["ok"] and backend["detail"].startswith("GET /api/concerts/dates?concertId="), backend
    assert not any(p.startswith("/healthz") for p in service.paths), service.paths
    assert code == 0, checks


@pytest.mark.quick  # Redis, HTTP probes and the reconciliation of payments against a topic
def test_check_on_production_shape_judges_every_runbook_and_is_never_ok_while_blind(
    cli: CliRunner, production: dict[str, str]
) -> None:
    seed_holds(production["CONCERTOPS_DATABASE_URL"])
    service = _SlowService(delay=1.2)
    # The service's pool, as B-3 sees it: three idle connections of its own user on its database.
    database = production["CONCERTOPS_DATABASE_URL"].rsplit("/", 1)[1]
    user = f"pool_{uuid.uuid4().hex[:8]}"
    pool = idle_connections(database, user, f"pw-{user}", 3)
    try:
        # Under the documented default --timeout, as cron runs it.
        environment = {**production, "CONCERTOPS_BACKEND_URLS": service.url, "CONCERTOPS_TIMEOUT": ""}
        done = cli("check", "--format", "json", env=environment)
    finally:
        service.close()
        for conn in pool:
            conn.close()
        drop_user(user)
    assert service.paths and service.paths[0].startswith("/api/concerts/dates?concertId=")
    assert done.returncode == 2, done.stderr
    document = json.loads(done.stdout)
    runbooks = {r["id"]: r for r in document["runbooks"]}
    overdue = next(f for f in runbooks["B-2"]["findings"] if f["signal"] == "overdue_holds")
    assert overdue["status"] == "CRITICAL" and overdue["value"] == 40, overdue
    assert "expiresAt" in overdue["query"]
    queue = {f["signal"]: f for f in runbooks["A-3"]["findings"]}
    assert queue["queue_waiting"]["value"] == 260 and queue["queue_waiting"]["status"] == "WARNING"
    assert queue["queue_waiting"]["source"] == "redis"
    assert 29 <= queue["queue_oldest_waiting"]["value"] < 90, queue["queue_oldest_waiting"]
    blind = next(f for f in runbooks["B-3"]["findings"] if f["signal"] == "pool_timeouts")
    assert blind["status"] == "NOT_APPLICABLE"
    assert blind["message"].startswith("not available on step10: the service exports no metrics"), blind
    for runbook in runbooks.values():
        measured = [
            f
            for f in runbook["findings"]
            if f["decisive"] and f["status"] not in ("UNKNOWN", "NOT_APPLICABLE")
        ]
        assert runbook["status"] != "OK" or measured, runbook  # OK only when a decisive signal said so
        assert measured, runbook  # every runbook is judged on production by a decisive signal
    slow = next(f for f in runbooks["A-1"]["findings"] if f["signal"] == "probe_p95")
    assert slow["status"] == "CRITICAL" and 1.2 <= slow["value"] < 3, slow
    errors = next(f for f in runbooks["A-2"]["findings"] if f["signal"] == "probe_server_errors")
    assert errors["status"] == "OK" and errors["value"] == 0, errors
    published = next(f for f in runbooks["B-1"]["findings"] if f["signal"] == "unpublished_payments")
    assert published["status"] == "OK" and published["value"] == 0  # no payment yet: measured, none missing


@pytest.mark.parametrize("hog", [False, True], ids=["quiet", "one-core-shared-with-a-cpu-hog"])
def test_a_service_that_never_answers_reads_a1_critical_under_the_full_check(
    production: dict[str, str], hog: bool
) -> None:
    """A hung service (every request waits) is slow, never unmeasured: the whole check, default timeout,
    also on a machine made slow (the command pinned to one core that a busy loop shares with it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections complete in the kernel's backlog; nobody ever reads or answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    pin = ["taskset", "-c", "0"]
    busy = subprocess.Popen([*pin, sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        done = subprocess.run(
            [*(pin if hog else []), CONCERTOPS, "check", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **production, "CONCERTOPS_BACKEND_URLS": url, "CONCERTOPS_TIMEOUT": ""},
        )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        listener.close()
    runbooks = {r["id"]: r for r in json.loads(done.stdout)["runbooks"]}
    slow = next(f for f in runbooks["A-1"]["findings"] if f["signal"] == "probe_p95")
    assert slow["status"] == "CRITICAL" and slow["value"] > 1.0, slow
    assert runbooks["A-1"]["status"] == "CRITICAL" and done.returncode == 2, done.stderr


def _availability_probe() -> Signal:
    from concertops.contract.binding import bind
    from concertops.contract.service_map import load as load_map
    from concertops.runbooks.pages import load

    signal = next(s for s in load("A-1").signals if s.name == "probe_p95")
    bound = bind(signal, load_map("step10"))
    assert not isinstance(bound, str), bound
    return bound


@pytest.mark.parametrize(
    ("delay", "deadline", "most"),
    [
        (0.4, 1.0, 2),  # a third full answer cannot fit: it is cut short, not a sample
        (1.0, 0.4, 1),  # slower than the whole deadline: one sample, what it had of it, not a failure
    ],
)
def test_an_http_probe_stops_at_its_deadline_with_the_samples_it_took(
    delay: float, deadline: float, most: int
) -> None:
    """Bounds that hold however slow the machine: a full answer takes at least the server's delay, and a
    request cut short counts at most what the deadline allowed it."""
    from concertops.sources.http_probe import HttpProbeSource

    signal = _availability_probe()
    assert signal.samples > 3 and signal.probe_timeout_s > deadline
    service = _SlowService(delay=delay)
    try:
        taken = HttpProbeSource((service.url,), time.monotonic() + deadline)._sample(signal)
    finally:
        service.close()
    assert 1 <= len(taken.seconds) <= most and taken.failed == 0, taken
    assert 0 < taken.p95_s <= deadline and taken.error_share == 0.0, taken
    if len(taken.seconds) > 1:  # full answers: each took at least the delay
        assert taken.p95_s >= delay, taken


def test_an_empty_redis_database_is_unknown_not_an_empty_queue(
    cli: CliRunner, production: dict[str, str]
) -> None:
    """No WAITING key in a database holding no key at all may as well be the wrong redis_url, and in one with
    no key of the queue's family the wrong key: not a zero. With the family there, an absent key is empty."""
    empty_db = REDIS_DB + 1
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=empty_db)
    client.flushdb()
    environment = {**production, "CONCERTOPS_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/{empty_db}"}
    try:
        blind = cli("check", "A-3", "--format", "json", env=environment)
        client.set("lock:seat:some-seat", "owner", px=60_000)  # a seat lock, and no key of the queue's
        familyless = cli("check", "A-3", "--format", "json", env=environment)
        client.zadd("queue:active", {"tok-1": 1})  # users let in, nobody waiting: an empty queue
        idle = cli("check", "A-3", "--format", "json", env=environment)
    finally:
        client.flushdb()
    findings = {f["signal"]: f for f in json.loads(blind.stdout)["runbooks"][0]["findings"]}
    assert blind.returncode == 3 and findings["queue_waiting"]["status"] == "UNKNOWN", findings
    assert f"Redis database {empty_db} holds no key at all" in findings["queue_waiting"]["message"]
    findings = {f["signal"]: f for f in json.loads(familyless.stdout)["runbooks"][0]["findings"]}
    assert findings["queue_waiting"]["status"] == "UNKNOWN", findings
    assert "no key of its family queue:*" in findings["queue_waiting"]["message"], findings
    findings = {f["signal"]: f for f in json.loads(idle.stdout)["runbooks"][0]["findings"]}
    assert findings["queue_waiting"]["status"] == "OK" and findings["queue_waiting"]["value"] == 0, findings


def test_a_slow_backend_does_not_keep_the_probe_from_the_others() -> None:
    """The backends are taken in turn: the second (down) is asked before the slow first uses up the time."""
    import socket

    from concertops.sources.http_probe import HttpProbeSource

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: refused
    service = _SlowService(delay=1.0)
    try:
        taken = HttpProbeSource((service.url, down), time.monotonic() + 1.5)._sample(_availability_probe())
    finally:
        service.close()
        closed.close()
    assert taken.unreachable >= 1 and len(taken.seconds) >= 1, taken
    assert taken.backends_down == 0.5 and taken.error_share == 0.0, taken  # one down, the other serves


def _refusing_url() -> tuple[socket.socket, str]:
    """A port bound and never listened on: every connection is refused, as when the process is gone."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    return closed, f"http://127.0.0.1:{closed.getsockname()[1]}"


def test_a_service_down_on_every_backend_is_an_outage_and_on_some_a_warning(
    cli: CliRunner, production: dict[str, str]
) -> None:
    first, down = _refusing_url()
    second, also_down = _refusing_url()
    service = _SlowService(delay=0.0)
    try:
        dead = cli("check", "A-2", "--format", "json", env={**production, "CONCERTOPS_BACKEND_URLS": down})
        both = f"{down},{also_down}"
        dead_both = cli(
            "check", "A-2", "--format", "json", env={**production, "CONCERTOPS_BACKEND_URLS": both}
        )
        half = cli(
            "check",
            "A-2",
            "--format",
            "json",
            env={**production, "CONCERTOPS_BACKEND_URLS": f"{service.url},{down}"},
        )
    finally:
        service.close()
        first.close()
        second.close()
    for done in (dead, dead_both):
        (runbook,) = json.loads(done.stdout)["runbooks"]
        gone = next(f for f in runbook["findings"] if f["signal"] == "probe_backends_down")
        assert done.returncode == 2 and runbook["status"] == "CRITICAL", runbook
        assert gone["value"] == 1.0 and runbook["verdict"].startswith("service unreachable on every backend")
    (runbook,) = json.loads(half.stdout)["runbooks"]
    findings = {f["signal"]: f for f in runbook["findings"]}
    assert (
        findings["probe_backends_down"]["status"] == "WARNING"
        and findings["probe_backends_down"]["value"] == 0.5
    )
    assert findings["probe_server_errors"]["value"] == 0.0  # the backend that is up serves
    assert runbook["status"] == "WARNING" and "some backends refuse every connection" in runbook["verdict"]
