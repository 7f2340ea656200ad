"""Detection on the real stack, run as a user would (the `concertops` command): healthy and faulty cases,
through Prometheus and again with Prometheus not answering (direct scrape)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest
import sqlalchemy as sa
from cli_runner import CliRunner
from harness import BOOTSTRAP, Backend, wait_for

from concertops.devstack.components import prometheus_url

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "check-schema.json").read_text())
MODES = {"prometheus": prometheus_url(), "direct": "http://127.0.0.1:9"}  # 9: nothing listens (discard)


def env(booking: Backend, mode: str) -> dict[str, str]:
    return {
        "CONCERTOPS_DATABASE_URL": str(booking.profile.database_url),
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "CONCERTOPS_PROMETHEUS_URL": MODES[mode],
        "CONCERTOPS_METRICS_URLS": ",".join(f"{u}/metrics" for u in booking.urls),
    }


def check(cli: CliRunner, booking: Backend, mode: str, *ids: str) -> tuple[int, dict]:
    done = cli("check", *ids, "--format", "json", env=env(booking, mode))
    assert done.returncode in (0, 1, 2), done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    return done.returncode, document


def finding(document: dict, runbook: str, signal: str) -> dict:
    result = next(r for r in document["runbooks"] if r["id"] == runbook)
    return next(f for f in result["findings"] if f["signal"] == signal)


def wait_scraped(booking: Backend, query: str, expected: float) -> None:
    """Prometheus scrapes every second; wait until it has seen what the instances export now."""

    def seen() -> bool:
        result = httpx.get(f"{prometheus_url()}/api/v1/query", params={"query": query}).json()["data"][
            "result"
        ]
        return bool(result) and float(result[0]["value"][1]) == expected

    wait_for(seen, timeout=20, what=f"Prometheus to see {query} == {expected}")


@pytest.mark.parametrize("mode", ["prometheus", "direct"])
def test_b2_overdue_holds_found_with_their_rows(cli: CliRunner, booking: Backend, mode: str) -> None:
    booking.release_holds()
    code, healthy = check(cli, booking, mode, "B-2")
    assert finding(healthy, "B-2", "overdue_holds")["status"] == "OK"
    reservation = booking.hold(8100 if mode == "direct" else 8000, booking.new_schedule(), 1)
    # A hold whose expiry event was lost: overdue and still HELD (as after the legacy consumer's restart).
    with booking.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE reservation SET held_expires_at = NOW() - INTERVAL 5 MINUTE WHERE reservation_id = :r"
            ),
            {"r": reservation},
        )
    code, faulty = check(cli, booking, mode, "b2")
    overdue = finding(faulty, "B-2", "overdue_holds")
    assert code == 1 and faulty["status"] == "WARNING"
    assert overdue["status"] == "WARNING" and overdue["value"] == 1.0 and overdue["threshold"] == 0.0
    assert overdue["source"] == "sql" and "held_expires_at" in overdue["query"]
    assert overdue["rows"][0][0] == reservation  # the manual's columns, oldest first
    plan = next(r for r in faulty["runbooks"] if r["id"] == "B-2")["plan"]
    assert plan[0]["id"] == "force-expire" and plan[0]["limits"]["batch"] == 500
    expected_mode = "prometheus" if mode == "prometheus" else "degraded: direct scrape"
    assert faulty["mode"].startswith(expected_mode)
    booking.release_holds()


@pytest.mark.parametrize("mode", ["prometheus", "direct"])
def test_b4_drop_policy_and_disconnected_producer(
    cli: CliRunner, booking: Backend, broker, mode: str
) -> None:
    code, healthy = check(cli, booking, mode, "B-4")
    assert finding(healthy, "B-4", "skip_policy")["status"] == "OK"
    assert finding(healthy, "B-4", "producer_connected")["status"] == "OK"
    booking.preset("legacy", producer_disconnect_after_s=1)
    broker.stop()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [0.0, 0.0], timeout=15, what="disconnect"
    )
    if mode == "prometheus":
        wait_scraped(booking, "min(kafka_producer_connected)", 0.0)
    code, faulty = check(cli, booking, mode, "B-4")
    connected = finding(faulty, "B-4", "producer_connected")
    assert code == 2 and connected["status"] == "CRITICAL" and connected["value"] == 0.0
    assert finding(faulty, "B-4", "skip_policy")["value"] == 2.0  # both instances set to drop
    assert "lost right now" in next(r for r in faulty["runbooks"] if r["id"] == "B-4")["verdict"]
    broker.start()
    wait_for(
        lambda: booking.metric_all("kafka_producer_connected") == [1.0, 1.0], timeout=20, what="reconnect"
    )


def test_an_unreachable_source_makes_only_its_signals_unknown(cli: CliRunner, booking: Backend) -> None:
    environment = {**env(booking, "prometheus"), "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    done = cli("check", "B-2", "--format", "json", "--timeout", "2", env=environment)
    document = json.loads(done.stdout)
    assert finding(document, "B-2", "expiry_lag")["status"] == "UNKNOWN"
    assert finding(document, "B-2", "overdue_holds")["status"] == "OK"
    assert done.returncode == 0  # the measured signals decide; UNKNOWN alone would be 3
    assert document["sources"]["kafka"] != "ok"


def test_table_view_reads_well(cli: CliRunner, booking: Backend) -> None:
    done = cli("check", env=env(booking, "prometheus"))
    assert done.returncode in (0, 1, 2), done.stderr
    assert "concertops check — prometheus" in done.stdout
    for runbook_id in ("A-1", "A-2", "A-3", "B-1", "B-2", "B-3", "B-4"):
        assert runbook_id in done.stdout
