"""The production service's own incidents on its shape, judged by signals that see their mechanism where it
exports no metrics: its pool held by connections asleep inside open transactions (B-3), a sell-out seen in
its reservations (A-2), and its seat locks fought over in Redis (A-1)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest
import redis
from cli_runner import CliRunner
from harness import wait_for
from prod_shape import alive, create_database, create_topics_and_groups, drop_database

from concertops.devstack.components import HOST, MARIADB_PORT, REDIS_PORT

POOL_SIZE = 10  # the step10 map's deploy constant db_pool_size


@pytest.fixture
def step10(production_broker: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    name, url = create_database()
    create_topics_and_groups(production_broker)
    yield {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/7",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": production_broker,
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
        "CONCERTOPS_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite'}",
        "CONCERTOPS_BACKEND_URLS": "",
    }
    drop_database(name)


@pytest.fixture
def users(step10: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """The service's database user and a reporting user, each with a password, on this test's database."""
    database = step10["CONCERTOPS_DATABASE_URL"].rsplit("/", 1)[1]
    suffix = uuid.uuid4().hex[:8]
    app, other = f"app_{suffix}", f"rep_{suffix}"
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        for user in (app, other):
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
            cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    yield database, app, other
    with admin.cursor() as cur:
        for user in (app, other):
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    admin.close()


def _in_a_transaction(database: str, user: str) -> pymysql.Connection:
    """A connection that opened a transaction, read, and went to sleep (waiting for a second one)."""
    conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user=user, password=f"pw-{user}", database=database)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SELECT COUNT(*) FROM payment")
    return conn


class _Api:
    """The service's HTTP API as a probe sees it: every GET answers ``status``, after ``first()`` returns
    (what the request waits for inside the service)."""

    def __init__(self, status: int, body: bytes, first: Callable[[], None] = lambda: None) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                first()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _waits_for_row(database: str, seat: str) -> Callable[[], None]:
    """A request as the stuck pool makes it: it waits for the seat's row the stuck transaction holds (as a
    request waits for a pooled connection), and goes on once it is free."""

    def wait() -> None:
        conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", database=database)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION innodb_lock_wait_timeout = 40")
                cur.execute("SELECT seatId FROM seat WHERE seatId = %s FOR UPDATE", (seat,))
            conn.rollback()
        finally:
            conn.close()

    return wait


def _asleep_over(conns: list[pymysql.Connection], seconds: int) -> None:
    """Until the server's processlist shows every one of ``conns`` asleep for over ``seconds`` (its own
    clock, whole seconds)."""
    ids = [c.thread_id() for c in conns]
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    query = (
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
        " WHERE command = 'Sleep' AND time > %s AND id IN %s"
    )

    def asleep() -> bool:
        with admin.cursor() as cur:
            cur.execute(query, (seconds, ids))
            return bool(cur.fetchone()[0] == len(ids))

    try:
        wait_for(
            asleep, timeout=seconds + 60, interval=0.5, what=f"{len(ids)} connections asleep over {seconds} s"
        )
    finally:
        admin.close()


def _holding(database: str, user: str, seat: str) -> pymysql.Connection:
    """A stuck payment: its transaction locked the seat's row, then went to sleep waiting for the pool."""
    conn = _in_a_transaction(database, user)
    with conn.cursor() as cur:
        cur.execute("SELECT seatId FROM seat WHERE seatId = %s FOR UPDATE", (seat,))
    return conn


def _json(cli: CliRunner, environment: dict[str, str], *args: str) -> tuple[int, dict]:
    done = cli(*args, "--format", "json", env=environment, timeout=120)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_b3_a_pool_held_inside_open_transactions_is_critical_and_apply_kills_exactly_those(
    cli: CliRunner, step10: dict[str, str], users: tuple[str, str, str]
) -> None:
    database, app, other = users
    assert cli("state", "init", env=step10).returncode == 0
    seat = _schedule(step10["CONCERTOPS_DATABASE_URL"], [None])[1][0]
    service = _Api(200, b'{"dates": []}', _waits_for_row(database, seat))
    step10 = {**step10, "CONCERTOPS_BACKEND_URLS": service.url}
    held = [_holding(database, app, seat)] + [_in_a_transaction(database, app) for _ in range(POOL_SIZE - 1)]
    outsider = _in_a_transaction(database, other)  # another user's: never touched
    try:
        _asleep_over([*held, outsider], 10)  # inside the transaction, as the signal and the kill count
        code, checked = _json(cli, step10, "check", "B-3")
        (runbook,) = checked["runbooks"]
        findings = {f["signal"]: f for f in runbook["findings"]}
        pool = findings["pool_held_in_transaction"]
        assert code == 2 and runbook["status"] == "CRITICAL", runbook
        assert pool["status"] == "CRITICAL" and pool["value"] == 1.0, pool
        assert runbook["verdict"].startswith("the service's pool is held by connections asleep inside open")
        # The server-wide share is far from max_connections: it alone read this incident as OK.
        assert findings["connection_share"]["status"] == "OK", findings["connection_share"]
        assert findings["probe_p95"]["value"] >= 1.0, findings["probe_p95"]  # the service hangs meanwhile

        _code, dry = _json(cli, step10, "b3", "--dry-run", "--app-user", app, "--max-kills", "4")
        (kill,) = [s for s in dry["steps"] if s["id"] == "kill-idle"]
        assert "kill 4 of 10 connection(s)" in kill["intent"], kill
        assert "rolls back" in kill["intent"] and "run again or raise --max-kills" in kill["intent"], kill
        assert all(alive(c) for c in held)  # dry: nobody killed
        _asleep_over(held, 10)  # the pings woke them: asleep again for over 10 s

        code, done = _json(cli, step10, "b3", "--apply", "--yes", "--app-user", app)
        (kill,) = [s for s in done["steps"] if s["id"] == "kill-idle"]
        assert kill["affected"] == POOL_SIZE, kill
        assert not any(alive(c) for c in held)
        assert alive(outsider)
        assert code == 0, json.dumps(done.get("after"), indent=1)
        # The verification saw the service answer again once the pool was free.
        probe = next(f for f in done["after"]["findings"] if f["signal"] == "probe_p95")
        assert probe["value"] < 1.0, probe
        _code, after = _json(cli, step10, "check", "B-3")
        pool = next(f for f in after["runbooks"][0]["findings"] if f["signal"] == "pool_held_in_transaction")
        assert pool["status"] == "OK" and pool["value"] < 0.5, pool
    finally:
        for conn in [*held, outsider]:
            if alive(conn):
                conn.close()
        service.close()


def _schedule(url: str, statuses: list[str | None]) -> tuple[str, list[str]]:
    """A schedule with one seat per entry, each named by a reservation of that status (None: free): the
    schedule and its seats."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    schedule, seats = str(uuid.uuid4()), []
    with engine.begin() as conn:
        for number, status in enumerate(statuses, 1):
            seat = str(uuid.uuid4())
            seats.append(seat)
            conn.execute(
                sa.text("INSERT INTO seat (seatId, scheduleId, seatNo) VALUES (:s, :sc, :n)"),
                {"s": seat, "sc": schedule, "n": number},
            )
            if status is not None:
                conn.execute(
                    sa.text(
                        "INSERT INTO reservation (reservationId, userId, seatId, status, heldAt, expiresAt)"
                        " VALUES (:r, :u, :s, :st, UTC_TIMESTAMP(), UTC_TIMESTAMP() + INTERVAL 5 MINUTE)"
                    ),
                    {"r": str(uuid.uuid4()), "u": str(uuid.uuid4()), "s": seat, "st": status},
                )
    engine.dispose()
    return schedule, seats


def test_a2_names_a_sell_out_from_the_reservations_while_the_service_answers_400(
    cli: CliRunner, step10: dict[str, str]
) -> None:
    url = step10["CONCERTOPS_DATABASE_URL"]
    sold, _seats = _schedule(url, ["CONFIRMED", "CONFIRMED", "CONFIRMED", "HELD", "HELD"])
    _schedule(url, ["CONFIRMED", "EXPIRED", None])  # a seat still free: not sold out
    service = _Api(400, b'{"message": "seat already taken"}')  # a taken seat, as production answers it
    try:
        environment = {**step10, "CONCERTOPS_BACKEND_URLS": service.url}
        code, checked = _json(cli, environment, "check", "A-2")
    finally:
        service.close()
    (runbook,) = checked["runbooks"]
    findings = {f["signal"]: f for f in runbook["findings"]}
    assert findings["sold_out_recently"]["value"] == 1, findings["sold_out_recently"]
    assert findings["probe_server_errors"]["value"] == 0.0  # 400s are refusals, not failures
    assert code == 1 and runbook["status"] == "WARNING", runbook  # never OK during its own incident
    assert runbook["verdict"].startswith(
        f"sell-out: 1 schedule(s) with every seat held or confirmed ({sold})"
    )
    assert "business, not an outage" in runbook["verdict"]


class _SeatLockCrowd:
    """``users`` threads doing the service's seat-lock algorithm on ``seats`` keys: SET NX PX, and on a miss
    retry every 50 ms; a winner holds the lock 100 ms (its reservation), then releases it and goes again."""

    def __init__(self, client: redis.Redis, users: int, seats: list[str]) -> None:
        import threading

        self.stop = threading.Event()
        self.acquired = 0

        def user(n: int) -> None:
            seat = seats[n % len(seats)]
            while not self.stop.is_set():
                if client.set(f"lock:seat:{seat}", f"owner-{n}", nx=True, px=5000):
                    self.acquired += 1
                    self.stop.wait(0.1)
                    client.delete(f"lock:seat:{seat}")
                else:
                    self.stop.wait(0.05)

        self.threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(users)]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def test_a1_seat_lock_contention_is_seen_in_redis_and_its_seats_named(
    cli: CliRunner, step10: dict[str, str]
) -> None:
    pool = redis.BlockingConnectionPool(host=HOST, port=REDIS_PORT, db=7, max_connections=210, timeout=10)
    client = redis.Redis(connection_pool=pool)
    seats = [str(uuid.uuid4()) for _ in range(3)]
    _code, quiet = _json(cli, step10, "check", "A-1")
    crowd = _SeatLockCrowd(client, 200, seats)
    try:
        _code, contended = _json(cli, step10, "check", "A-1")
    finally:
        crowd.close()
        client.delete(*[f"lock:seat:{seat}" for seat in seats])
        pool.disconnect()
    (runbook,) = quiet["runbooks"]
    waiters = next(f for f in runbook["findings"] if f["signal"] == "lock_waiters")
    assert waiters["status"] == "OK" and runbook["status"] == "OK", (
        runbook
    )  # judged by Redis alone: no backends
    (runbook,) = contended["runbooks"]
    waiters = next(f for f in runbook["findings"] if f["signal"] == "lock_waiters")
    assert crowd.acquired > 0
    assert waiters["status"] in ("WARNING", "CRITICAL") and runbook["status"] != "OK", runbook
    assert runbook["verdict"].startswith("seat-lock contention: about "), runbook["verdict"]
    assert any(f"lock:seat:{seat}" in runbook["verdict"] for seat in seats), runbook["verdict"]
