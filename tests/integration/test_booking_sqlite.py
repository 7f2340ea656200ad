"""The embedded default: the backend on a SQLite file, driven through the real `concertops` command.

It gets a broker of its own, so its consumers never join the MariaDB backend's groups."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import workers
from cli_runner import CliRunner
from harness import free_port_block, statuses, wait_for

from concertops.devstack import probes
from concertops.devstack.components import HOST, REDIS_PORT, create_topics, tansu_binary


@pytest.fixture
def own_broker(stack: None) -> Iterator[str]:
    port = free_port_block(1, workers.port_block_start() + 900)
    url = f"tcp://{HOST}:{port}"
    broker = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: probes.kafka_ready(HOST, port), timeout=15, what="a second Tansu broker")
        create_topics(f"{HOST}:{port}")
        yield f"{HOST}:{port}"
    finally:
        broker.terminate()
        broker.wait(10)


def test_backend_runs_on_sqlite(cli: CliRunner, own_broker: str, tmp_path: Path) -> None:
    database = tmp_path / "booking.sqlite"
    env = {
        "CONCERTOPS_DATABASE_URL": f"sqlite:///{database}",
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/14",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": own_broker,
        "CONCERTOPS_STATE_DIR": str(tmp_path / "state"),
    }
    port = free_port_block(1, workers.port_block_start() + 800)
    for args in (["backend", "migrate"], ["backend", "seed", "--seats", "10"]):
        done = cli(*args, env=env)
        assert done.returncode == 0, done.stderr
    import redis

    redis.Redis.from_url(env["CONCERTOPS_REDIS_URL"]).flushdb()
    served = cli("backend", "serve", "-n", "1", "--port", str(port), "--detach", env=env)
    assert served.returncode == 0, served.stderr
    api = f"http://{HOST}:{port}"
    try:
        tokens = [
            httpx.post(f"{api}/queue/tokens", json={"user_id": u}).json()["token"] for u in range(1, 21)
        ]
        wait_for(
            lambda: all(httpx.get(f"{api}/queue/tokens/{t}").json()["status"] == "ACTIVE" for t in tokens),
            timeout=20,
            what="tokens to become ACTIVE",
        )
        with ThreadPoolExecutor(20) as pool:
            responses = list(
                pool.map(
                    lambda t: httpx.post(
                        f"{api}/reservations",
                        json={"schedule_id": 1, "seat_no": 3},
                        headers={"X-Queue-Token": t},
                        timeout=30,
                    ),
                    tokens,
                )
            )
        assert statuses(responses) == {201: 1, 409: 19}
        winner = next(r for r in responses if r.status_code == 201).json()["reservationId"]
        user = next(i + 1 for i, r in enumerate(responses) if r.status_code == 201)
        paid = httpx.post(f"{api}/payments", json={"reservation_id": winner, "user_id": user}, timeout=30)
        assert paid.status_code == 201, paid.text
        engine = sa.create_engine(env["CONCERTOPS_DATABASE_URL"])

        def scalar(sql: str) -> object:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql)).scalar()

        # The outbox relay published the event and the notification consumer recorded it, all on SQLite.
        wait_for(
            lambda: scalar("SELECT COUNT(*) FROM notification") == 1,
            timeout=40,
            what="the payment event to reach the notification consumer",
        )
        assert scalar("SELECT status FROM outbox_event") == "PUBLISHED"
        assert scalar("SELECT COUNT(*) FROM seat WHERE status = 'HELD'") == 0
        engine.dispose()
    finally:
        stopped = cli("backend", "stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
