"""Game days: each incident of the manual caused on the real stack by `concertops simulate incident`, seen
by `concertops check`, fixed by `concertops <id> --apply --yes`, seen healthy again — and nothing lost.

Time to detect is what simulate measured from its first action to the first check showing the harm; time to
recover runs from the start of the apply to the check that reads the runbook OK again (rates over the last
15 s: the default minutes would still hold the incident)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from checking import consistent, env
from cli_runner import CliRunner
from harness import Backend, wait_for

from concertops.simulate.incidents import RECIPES

WINDOW = "15s"


@pytest.fixture
def game(booking: Backend, times: dict[str, tuple[float, float]]) -> Iterator[Backend]:
    """A healthy start: no hold of an earlier test left to go overdue while the legacy preset is in force."""
    booking.release_holds()
    yield booking
    booking.release_holds()
    booking.release_tokens()


def rehearse(cli: CliRunner, booking: Backend, times: dict, incident: str, *apply_args: str) -> dict:
    """Simulate → check non-OK → apply → check OK, with the invariants; the apply's JSON document."""
    environment = env(booking, "prometheus")
    last_payment = booking.scalar("SELECT COALESCE(MAX(payment_id), 0) FROM payment")

    # A game day starts without the harm: the detection time measured below must be this incident's, not
    # the echo of an earlier one still inside a rate window.
    symptoms = RECIPES[incident].symptoms
    wait_for(
        lambda: all(
            f["status"] == "OK"
            for f in _check(cli, environment, incident)["findings"]
            if f["signal"] in symptoms
        ),
        timeout=90,
        interval=3,
        what=f"{incident}'s symptoms {symptoms} to read OK before the game day",
    )
    simulated = cli("simulate", "incident", incident, "--format", "json", env=environment, timeout=150)
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    outcome = json.loads(simulated.stdout)
    assert outcome["detected"] and not outcome["load_errors"], outcome

    detected = _check(cli, environment, incident)
    assert detected["status"] != "OK", detected

    started = time.monotonic()
    command = incident.lower().replace("-", "")
    applied = cli(
        command,
        "--apply",
        "--yes",
        "--verify-window",
        WINDOW,
        *apply_args,
        "--format",
        "json",
        env=environment,
        timeout=240,
    )
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr
    healthy = _check(cli, environment, incident, "--window", WINDOW)
    recovered = time.monotonic() - started
    assert healthy["status"] == "OK", healthy

    _invariants(booking, last_payment)
    times[incident] = (float(outcome["seconds_to_detect"]), recovered)
    return dict(json.loads(applied.stdout))


def _check(cli: CliRunner, environment: dict[str, str], incident: str, *extra: str) -> dict:
    done = cli("check", incident, "--format", "json", *extra, env=environment)
    assert done.returncode in (0, 1, 2), done.stderr
    return dict(json.loads(done.stdout)["runbooks"][0])


def _invariants(booking: Backend, last_payment: int) -> None:
    """No seat held or sold twice, every payment of the game day announced exactly once, nothing overdue."""
    consistent(booking)
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM (SELECT seat_id FROM reservation WHERE status IN ('HELD', 'CONFIRMED')"
            " GROUP BY seat_id HAVING COUNT(*) > 1) twice"
        )
        == 0
    )
    new_payments = "SELECT COUNT(*) FROM payment WHERE payment_id > :p"
    unannounced = (
        "SELECT COUNT(*) FROM payment p WHERE p.payment_id > :p"
        " AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.payment_id = p.payment_id)"
    )
    if booking.scalar(new_payments, p=last_payment):
        wait_for(
            lambda: booking.scalar(unannounced, p=last_payment) == 0,
            timeout=30,
            what="every payment of the game day to reach the notification consumer",
        )
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM (SELECT payment_id FROM notification WHERE payment_id > :p"
            " GROUP BY payment_id HAVING COUNT(*) > 1) twice",
            p=last_payment,
        )
        == 0
    )
    assert (
        booking.scalar("SELECT COUNT(*) FROM reservation WHERE status = 'HELD' AND held_expires_at < NOW()")
        == 0
    )


# A-2 first: A-1's bursts end in 409s as well, and would hold A-2's conflict share up for a minute.
def test_a2_sellout_conflicts(cli: CliRunner, game: Backend, times: dict) -> None:
    done = rehearse(cli, game, times, "A-2")
    assert done["steps"][0]["id"] == "mark-sold-out" and done["steps"][0]["affected"] >= 1


def test_a1_lock_contention(cli: CliRunner, game: Backend, times: dict) -> None:
    done = rehearse(cli, game, times, "A-1")
    assert game.metric_all("booking_setting_value", {"name": "max_active_tokens"}) == [20.0, 20.0]
    assert [s["result"] for s in done["steps"]] == ["ok"] * len(done["steps"])


def test_a3_queue_polling(cli: CliRunner, game: Backend, times: dict) -> None:
    rehearse(cli, game, times, "A-3", "--raise-tokens", "20")
    assert game.scalar("SELECT COUNT(*) FROM queue_token WHERE status = 'WAITING'") == 0


def test_b1_kafka_outage(cli: CliRunner, game: Backend, times: dict) -> None:
    done = rehearse(cli, game, times, "B-1")
    assert "republish-missed" in [s["id"] for s in done["steps"]]


def test_b2_lost_expiry(cli: CliRunner, game: Backend, times: dict) -> None:
    done = rehearse(cli, game, times, "B-2")
    assert next(s for s in done["steps"] if s["id"] == "force-expire")["affected"] >= 40


def test_b3_pool_exhausted(cli: CliRunner, game: Backend, times: dict) -> None:
    done = rehearse(cli, game, times, "B-3", "--max-kills", "200")
    assert next(s for s in done["steps"] if s["id"] == "kill-idle")["affected"] >= 55
    assert times["B-3"][0] > 10  # seen only once the leaked connections had slept for over 10 s
    asleep = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE command = 'Sleep' AND time > 10"
    assert game.scalar(asleep) < 50


def test_b4_silent_producer(cli: CliRunner, game: Backend, times: dict) -> None:
    done = rehearse(cli, game, times, "B-4")
    assert "republish-window" in [s["id"] for s in done["steps"]]
