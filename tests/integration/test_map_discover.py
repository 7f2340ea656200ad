"""``concertops map discover`` on the two shapes concertops knows: the draft it writes from production's
stores judges every runbook as ``step10.yml`` does, and the one from the twin's as ``reference.yml`` does."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from checking import env as twin_env
from cli_runner import CliRunner
from harness import Backend, Broker, wait_for
from prod_shape import (
    seed_holds,
    seed_payments,
    seed_tokens,
)

from concertops.contract import capabilities, service_map
from concertops.contract.discovery import state_dir
from concertops.devstack.components import HOST, REDIS_PORT

REDIS_DB = 10  # the step10_service fixture's
PROBE = "/api/concerts/dates?concertId=00000000-0000-0000-0000-000000000000"


def _judged(cli: CliRunner, envs: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Each environment's `check` of every runbook, run side by side (ages move while one waits)."""

    def run(environment: dict[str, str]) -> dict[str, Any]:
        done = cli("check", "--format", "json", env=environment, timeout=120)
        assert done.returncode in (0, 1, 2, 3), done.stderr
        return {
            rb["id"]: (rb["status"], sorted((f["signal"], f["status"]) for f in rb["findings"]))
            for rb in json.loads(done.stdout)["runbooks"]
        }

    with ThreadPoolExecutor(len(envs)) as pool:
        return list(pool.map(run, envs))


@pytest.fixture
def production(step10_service: dict[str, str]) -> dict[str, str]:
    env = dict(step10_service)
    env.pop("CONCERTOPS_SERVICE_MAP")  # each run names its map
    return env


def test_discover_on_production_judges_every_runbook_as_step10_does(
    cli: CliRunner, production: dict[str, str], tmp_path: Path
) -> None:
    url = production["CONCERTOPS_DATABASE_URL"]
    seed_holds(url, overdue=12, not_due=3, zone_offset_s=9 * 3600)  # a service east of UTC
    bootstrap = production["CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS"]
    seed_payments(url, bootstrap, count=10, missing=2, zone_offset_s=9 * 3600)
    client = redis.Redis(host=HOST, port=REDIS_PORT, db=REDIS_DB)
    seed_tokens(client, waiting=250, active=3)
    for _ in range(2):  # seat locks held under traffic (each lives seconds)
        client.set(f"lock:seat:{uuid.uuid4()}", "1", px=120_000)
    draft = tmp_path / "mine.yml"
    done = cli("map", "discover", "--out", str(draft), "--name", "mine", "--probe", PROBE, env=production)
    assert done.returncode == 0, done.stderr
    text = draft.read_text()
    assert "TO CHECK" in text and "TO CHECK deploy_constants" in done.stderr  # no store shows them
    mine = service_map.load(str(draft))
    step10 = service_map.load("step10")
    assert mine.zone == "+09:00"  # from the rows' two clocks
    assert (mine.tables, mine.queue, mine.locks, mine.seat_taken_by) == (
        step10.tables,
        step10.queue,
        step10.locks,
        step10.seat_taken_by,
    )
    assert mine.kafka.envelope == "step10" and mine.kafka.topics == step10.kafka.topics
    assert {g.group for g in mine.kafka.groups.values()} == {g.group for g in step10.kafka.groups.values()}
    assert mine.kafka.groups["expiry"] == step10.kafka.groups["expiry"]
    doctor = cli("doctor", "--json", env={**production, "CONCERTOPS_SERVICE_MAP": str(draft)}, timeout=120)
    rows = {r["source"]: r for r in json.loads(doctor.stdout)["checks"]}
    assert all(rows[f"map: {store}"]["ok"] for store in ("database", "zone", "redis", "kafka")), rows

    # The oldest WAITING token's age moves while the two checks run: issued ahead of the server's clock, it
    # reads 0 in both, far from every threshold however slow the machine.
    seconds, _micros = client.time()
    ahead = (seconds + 3600) * 1000
    client.zadd("queue:waiting", {member: ahead for member in client.zrange("queue:waiting", 0, -1)})
    by_step10, by_draft = _judged(
        cli,
        [
            {**production, "CONCERTOPS_SERVICE_MAP": "step10"},
            {**production, "CONCERTOPS_SERVICE_MAP": str(draft)},
        ],
    )
    assert by_draft == by_step10
    assert by_step10["B-2"][0] == "CRITICAL"  # judged, and the same, not merely both blind


def test_discover_on_the_twin_judges_every_runbook_as_reference_does(
    cli: CliRunner, booking: Backend, tmp_path: Path
) -> None:
    environment = {**twin_env(booking, "direct"), "CONCERTOPS_REDIS_URL": str(booking.profile.redis_url)}
    # A hold and a payment: the expiry and notification consumers commit, so the broker lists their groups.
    reservation = booking.hold(9100, booking.new_schedule(), 1)
    paid = booking.post("/payments", {"reservation_id": reservation, "user_id": 9100})
    assert paid.status_code in (200, 201), paid.text
    broker = Broker(state_dir())
    wait_for(
        lambda: (
            broker.committed("booking-notification", "payment.completed") > 0
            and broker.committed("booking-expiry", "reservation.expiration") > 0
        ),
        timeout=60,
        what="the twin's consumers to commit",
    )
    draft = tmp_path / "twin.yml"
    done = cli("map", "discover", "--out", str(draft), "--name", "twin", env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    mine = service_map.load(str(draft))
    reference = service_map.load("reference")
    found = yaml.safe_dump(yaml.safe_load(draft.read_text()))
    assert (mine.tables, mine.queue, mine.kafka) == (reference.tables, reference.queue, reference.kafka), (
        found
    )
    # What the stores cannot show: that the twin's migrations also hold concertops's own tables.
    assert capabilities.of(mine) == capabilities.of(reference) and not mine.acts.state_tables
    assert mine.metrics and mine.acts.runtime_settings and mine.acts.outbox
    by_reference, by_draft = _judged(
        cli, [environment, {**environment, "CONCERTOPS_SERVICE_MAP": str(draft)}]
    )
    assert by_draft == by_reference


def test_discover_against_a_store_it_cannot_read_names_it_writes_the_rest_and_exits_3(
    cli: CliRunner, production: dict[str, str], tmp_path: Path
) -> None:
    draft = tmp_path / "partial.yml"
    dead = {**production, "CONCERTOPS_REDIS_URL": f"redis://{HOST}:1/0"}
    done = cli("map", "discover", "--out", str(draft), env=dead, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "INCOMPLETE redis:" in done.stderr and "Traceback" not in done.stderr
    text = draft.read_text()
    assert text.count("# INCOMPLETE: redis") == 1 and "reservationId" in text
    again = cli("map", "discover", "--out", str(draft), env=dead, timeout=120)
    assert again.returncode == 3 and f"{draft} exists" in again.stderr and "--force" in again.stderr
