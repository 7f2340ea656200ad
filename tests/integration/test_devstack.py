"""The devstack as `make test` left it: every component healthy, every Prometheus target up."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest
from cli_runner import CliRunner
from prometheus_client import CollectorRegistry, Counter, start_http_server

from concertops.contract.discovery import register_target, state_dir, unregister_target
from concertops.devstack.components import prometheus_url


def query(expr: str) -> list[dict]:
    url = f"{prometheus_url()}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=3) as resp:
        return json.load(resp)["data"]["result"]


def test_status_reports_every_component_healthy(stack: None, cli: CliRunner) -> None:
    done = cli("devstack", "status")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("mariadb", "redis", "kafka", "mysqld-exporter", "redis-exporter", "prometheus"):
        assert any(line.startswith(name) and "healthy" in line for line in done.stdout.splitlines()), name


def test_prometheus_sees_every_target_up_and_the_exporters_reach_their_services(stack: None) -> None:
    # The devstack's own jobs; backend instances come and go with the tests that start them.
    ups = query('up{job=~"prometheus|mysqld|redis"}')
    assert {r["metric"]["job"] for r in ups} == {"prometheus", "mysqld", "redis"}
    assert all(r["value"][1] == "1" for r in ups), ups
    assert query("mysql_up")[0]["value"][1] == "1"
    assert query("redis_up")[0]["value"][1] == "1"


@pytest.mark.quick  # the devstack and its Prometheus
def test_a_registered_backend_instance_is_scraped(stack: None) -> None:
    registry = CollectorRegistry()
    Counter("devstack_probe", "a marker metric", registry=registry).inc()
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_port
    register_target(state_dir(), "test-instance", f"127.0.0.1:{port}", {"service": "booking"})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = query(f'up{{job="booking",instance="127.0.0.1:{port}"}}')
            if found and found[0]["value"][1] == "1":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("Prometheus never scraped the registered instance")
        assert query("devstack_probe_total")[0]["metric"]["service"] == "booking"
    finally:
        unregister_target(state_dir(), "test-instance")
        server.shutdown()
