"""What the integration tests share to run `concertops check` as a user would and read its answer."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
from cli_runner import CliRunner
from harness import BOOTSTRAP, Backend, wait_for

from concertops.devstack.components import prometheus_url

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "check-schema.json").read_text())
MODES = {"prometheus": prometheus_url(), "direct": "http://127.0.0.1:9"}  # 9: nothing listens (discard)


def env(booking: Backend, mode: str) -> dict[str, str]:
    return {
        "CONCERTOPS_DATABASE_URL": str(booking.profile.database_url),
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "CONCERTOPS_PROMETHEUS_URL": MODES[mode],
        "CONCERTOPS_METRICS_URLS": ",".join(f"{u}/metrics" for u in booking.urls),
        "CONCERTOPS_BACKEND_URLS": ",".join(booking.urls),
    }


# Rates judged over this window where a test must not read what earlier tests on the same backend did (their
# 5xx stay a minute in the runbooks' 1 m windows): a seeded quiet start in seconds instead of a minute.
QUIET_WINDOW = "20s"


def check(
    cli: CliRunner, booking: Backend, mode: str, *ids: str, window: str | None = None
) -> tuple[int, dict]:
    extra = ("--window", window) if window else ()
    done = cli("check", *ids, "--format", "json", *extra, env=env(booking, mode))
    assert done.returncode in (0, 1, 2), done.stderr + _unknown(done.stdout)
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    return done.returncode, document


def _unknown(stdout: str) -> str:
    """The findings that could not be measured, for an assertion's message."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return stdout[-2000:]
    return "; ".join(
        f"{r['id']} {f['signal']}: {f['message']}"
        for r in document.get("runbooks", [])
        for f in r["findings"]
        if f["status"] == "UNKNOWN"
    )


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


def settled(booking: Backend) -> None:
    """Prometheus has scraped the settings every instance applies now (the fixture just reset them)."""
    version = min(booking.metric_all("booking_settings_version"))
    wait_scraped(booking, "min(booking_settings_version)", version)


def promql(query: str) -> float | None:
    result = httpx.get(f"{prometheus_url()}/api/v1/query", params={"query": query}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_counter_scraped(booking: Backend, metric: str) -> None:
    """Wait until Prometheus holds the instances' current total of ``metric``."""
    total = sum(booking.metric_all(metric))
    wait_scraped(booking, f"sum({metric})", total)


def wait_no_server_errors() -> None:
    """Earlier 5xx (legacy faults) must leave the QUIET_WINDOW first, or A-2 rightly calls it an incident."""
    wait_for(
        lambda: (promql(f'sum(rate(http_requests_total{{status=~"5.."}}[{QUIET_WINDOW}]))') or 0) == 0,
        timeout=40,
        interval=1,
        what=f"earlier 5xx to leave the {QUIET_WINDOW} window",
    )


def consistent(booking: Backend) -> None:
    """No seat HELD for a reservation that is not, no CONFIRMED reservation whose seat was released."""
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM seat s JOIN reservation r ON r.reservation_id = s.reservation_id "
            "WHERE s.status = 'HELD' AND r.status <> 'HELD'"
        )
        == 0
    )
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM reservation r JOIN seat s ON s.seat_id = r.seat_id "
            "WHERE r.status = 'CONFIRMED' AND (s.status <> 'SOLD' OR s.reservation_id <> r.reservation_id)"
        )
        == 0
    )
