"""`concertops triage` end to end: the devstack's Prometheus loads alerts/, the backend is driven into a P0
condition, and triage names the runbook that fixes it."""

from __future__ import annotations

import json

import httpx
from checking import env
from cli_runner import CliRunner
from harness import Backend, Broker, wait_for

from concertops.devstack.components import prometheus_url


def firing() -> set[str]:
    alerts = httpx.get(f"{prometheus_url()}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def test_the_devstack_prometheus_evaluates_the_alert_rules() -> None:
    groups = httpx.get(f"{prometheus_url()}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"BookingServerErrorRateHigh", "KafkaProducerSendFailures", "SellOutConflictShare"} <= names


def test_a_kafka_outage_pages_and_triage_names_b1(cli: CliRunner, booking: Backend, broker: Broker) -> None:
    booking.preset("legacy", kafka_send_timeout_ms=500, producer_disconnect_after_s=300)
    schedule = booking.new_schedule()
    reservation = booking.hold(9501, schedule, 1)
    broker.stop()
    try:
        paid = booking.post("/payments", {"reservation_id": reservation, "user_id": 9501})
        assert paid.status_code == 500  # direct publishing: the broker outage fails the payment
        wait_for(lambda: "KafkaProducerSendFailures" in firing(), timeout=30, what="the P0 alert to fire")
        done = cli("triage", "--format", "json", env=env(booking, "prometheus"))
    finally:
        broker.start()
    assert done.returncode == 2, done.stderr
    document = json.loads(done.stdout)
    b1 = next(lead for lead in document["runbooks"] if lead["id"] == "B-1")
    assert b1["severity"] == "page" and b1["command"] == "concertops b1"
    assert "KafkaProducerSendFailures" in [a["alert"] for a in b1["alerts"]]
    assert document["runbooks"][0]["severity"] == "page"  # worst first
    table = cli("triage", env=env(booking, "prometheus"))
    assert "concertops b1" in table.stdout and "KafkaProducerSendFailures" in table.stdout


def test_triage_without_prometheus_is_unknown(cli: CliRunner, booking: Backend) -> None:
    done = cli("triage", "--timeout", "1", env=env(booking, "direct"))
    assert done.returncode == 3
    assert "did not answer" in done.stderr and "Traceback" not in done.stderr
