"""Remediation on the real stack, run as a user would: each of A-1, A-2, A-3 reproduced with the legacy
preset, detected, applied with `--apply --yes`, verified; dry runs that change nothing; one apply at a time;
settings rollback on every instance; audit rows without secrets."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from checking import (
    QUIET_WINDOW,
    check,
    env,
    finding,
    wait_counter_scraped,
    wait_no_server_errors,
    wait_scraped,
)
from cli_runner import CliRunner
from harness import Backend, wait_for

from concertops.devstack.components import HOST, MARIADB_PORT


def apply(cli: CliRunner, booking: Backend, command: str, *args: str, **extra: str) -> tuple[int, dict]:
    done = cli(command, *args, "--format", "json", env={**env(booking, "prometheus"), **extra}, timeout=300)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def settings_state(booking: Backend) -> tuple[Any, ...]:
    return (
        booking.scalar("SELECT MAX(version) FROM runtime_setting"),
        tuple(booking.rows("SELECT name, value FROM runtime_setting ORDER BY name")),
    )


def audit_rows(booking: Backend, run_id: str) -> list[sa.Row]:
    return booking.rows("SELECT * FROM remediation_audit WHERE run_id = :r ORDER BY audit_id", r=run_id)


def burst(booking: Backend, schedule: int, tokens: list[str], seat_no: int = 1) -> dict[int, int]:
    """Every user at once on the same seat, spread over both instances: {status: count}."""
    with ThreadPoolExecutor(len(tokens)) as pool:
        answers = list(
            pool.map(
                lambda i: (
                    booking.post(
                        "/reservations",
                        {"schedule_id": schedule, "seat_no": seat_no},
                        tokens[i],
                        instance=i % 2,
                    ).status_code
                ),
                range(len(tokens)),
            )
        )
    return {code: answers.count(code) for code in set(answers)}


def test_a1_apply_stops_lock_waiters_draining_the_pool(cli: CliRunner, booking: Backend) -> None:
    booking.preset("legacy", db_query_delay_ms=400, max_active_tokens=200)
    crowd, schedule = booking.active_tokens([9000 + i for i in range(60)]), booking.new_schedule()
    # 60 users on one seat, each asking again as soon as answered: the lock's waiters hold the legacy
    # pools of 10 until a request finds none (503), however slowly this machine sends them.
    first = booking.crowd(
        crowd,
        {"schedule_id": schedule, "seat_no": 1},
        lambda seen: seen.get(503, 0) > 0,
        "the legacy pool of 10 to run dry (503)",
    )
    assert first.get(503, 0) > 0, first
    wait_counter_scraped(booking, "distributed_lock_acquisition_errors_total")
    code, detected = check(cli, booking, "prometheus", "A-1")
    assert code == 2 and finding(detected, "A-1", "p95_latency")["status"] == "CRITICAL", detected

    before = settings_state(booking)
    code, dry = apply(cli, booking, "a1", "--dry-run")
    assert code == 0 and [s["id"] for s in dry["steps"]] == [
        "fewer-active-tokens",
        "fail-fast-lock",
        "explicit-pool",
    ]
    assert all(s["detail"].startswith("would set") for s in dry["steps"])
    assert settings_state(booking) == before  # truly dry
    assert {r.dry_run for r in audit_rows(booking, dry["run_id"])} == {1}

    booking.release_tokens()
    # Verified over the last 20 s: the crowd's slow answers stay a minute in the page's windows.
    code, done = apply(
        cli, booking, "a1", "--apply", "--yes", "--reason", "INC-1 game day", "--verify-window", QUIET_WINDOW
    )
    assert code == 0, json.dumps(done["after"], indent=1)
    assert done["after"]["status"] == "OK" and [s["result"] for s in done["steps"]] == ["ok"] * 3
    assert booking.metric_all("booking_setting_value", {"name": "max_active_tokens"}) == [20.0, 20.0]
    assert booking.metric_all("booking_setting_value", {"name": "lock_wait_ms"}) == [1500.0, 1500.0]
    assert booking.metric_all("mysql_connection_pool_size") == [30.0, 30.0]
    rows = audit_rows(booking, done["run_id"])
    assert [r.step for r in rows] == ["fewer-active-tokens", "fail-fast-lock", "explicit-pool", "verify"]
    assert all(r.result == "ok" and r.operator and r.host and r.finished_at for r in rows)
    reasons = booking.rows("SELECT DISTINCT reason FROM runtime_setting_history WHERE name = 'db_pool_size'")
    assert ("INC-1 game day",) in [tuple(r) for r in reasons]

    # The same crowd again: at most 20 let in, and the pools of 30 no longer run dry.
    for user in range(9100, 9160):
        booking.post("/queue/tokens", {"user_id": user})
    wait_for(
        lambda: booking.scalar("SELECT COUNT(*) FROM queue_token WHERE status = 'ACTIVE'") == 20,
        timeout=20,
        what="20 ACTIVE tokens",
    )
    active = [
        r.token_id
        for r in booking.rows("SELECT token_id FROM queue_token WHERE status = 'ACTIVE' AND user_id >= 9100")
    ]
    second = burst(booking, booking.new_schedule(), active)
    assert second.get(503, 0) == 0, second

    # Healthy again (or still settled): applying once more changes nothing.
    version = booking.scalar("SELECT MAX(version) FROM runtime_setting")
    code, again = apply(cli, booking, "a1", "--apply", "--yes")
    assert code == 0
    assert booking.scalar("SELECT MAX(version) FROM runtime_setting") == version
    assert all(s["result"] == "ok" and s["affected"] == 0 for s in again["steps"])
    booking.release_tokens()


def test_a2_marks_sold_out_schedules_so_retries_skip_the_lock(cli: CliRunner, booking: Backend) -> None:
    wait_no_server_errors()
    booking.preset("legacy")
    schedule = booking.new_schedule(seats=2)
    for seat in (1, 2):
        booking.hold(9201 + seat, schedule, seat)
    retrying = booking.active_token(9299)

    def retry(times: int) -> list[int]:
        body = {"schedule_id": schedule, "seat_no": 1}
        with ThreadPoolExecutor(8) as pool:
            return list(
                pool.map(
                    lambda i: booking.post("/reservations", body, retrying, i % 2).status_code, range(times)
                )
            )

    assert set(retry(400)) == {409}
    wait_counter_scraped(booking, "http_requests_total")
    code, detected = check(cli, booking, "prometheus", "A-2", window=QUIET_WINDOW)
    assert code == 1 and finding(detected, "A-2", "conflict_share")["status"] == "WARNING"

    marked = "SELECT sold_out FROM concert_schedule WHERE schedule_id = :s"
    code, dry = apply(cli, booking, "a2", "--dry-run")
    assert code == 0 and dry["steps"][0]["id"] == "mark-sold-out" and dry["steps"][0]["affected"] >= 1
    assert not booking.scalar(marked, s=schedule)  # rolled back

    code, done = apply(cli, booking, "a2", "--apply", "--yes", "--verify-window", QUIET_WINDOW)
    assert code == 0, json.dumps(done["after"], indent=1)
    assert booking.scalar(marked, s=schedule)
    # Refused before the lock: the sold-out reason counts every retry, the lock path none of them.
    wait_for(
        lambda: booking.metric_all("booking_settings_version") and _marked_everywhere(booking, schedule),
        timeout=10,
        what="instances to load the mark",
    )
    lock_path = sum(booking.metric_all("reservation_conflict_total", {"reason": "seat_taken"}))
    early = sum(booking.metric_all("reservation_conflict_total", {"reason": "sold_out"}))
    answers = [
        booking.post("/reservations", {"schedule_id": schedule, "seat_no": 1}, retrying, i % 2)
        for i in range(20)
    ]
    assert {a.status_code for a in answers} == {409} and answers[0].json()["remainingSeats"] == 0
    assert sum(booking.metric_all("reservation_conflict_total", {"reason": "sold_out"})) == early + 20
    assert sum(booking.metric_all("reservation_conflict_total", {"reason": "seat_taken"})) == lock_path
    booking.release_holds()


def _marked_everywhere(booking: Backend, schedule: int) -> bool:
    body = {"schedule_id": schedule, "seat_no": 1}
    token = booking.active_token(9298)
    return all(
        booking.post("/reservations", body, token, i).json().get("error") == "sold_out" for i in (0, 1)
    )


def test_a3_activates_waiting_tokens_and_switches_to_events(cli: CliRunner, booking: Backend) -> None:
    booking.preset("legacy", max_active_tokens=1, queue_activation_interval_s=5)
    booking.active_token(9300)
    for user in range(9301, 9311):
        booking.post("/queue/tokens", {"user_id": user})
    waiting = "SELECT COUNT(*) FROM queue_token WHERE status = 'WAITING'"
    wait_for(
        lambda: max(booking.metric_all("queue_oldest_waiting_age_seconds")) > 10,
        timeout=30,
        what="the oldest WAITING token to pass 10 s",
    )
    wait_scraped(booking, "max(queue_oldest_waiting_age_seconds) > bool 10", 1.0)

    code, dry = apply(cli, booking, "a3", "--dry-run", "--raise-tokens", "20")
    assert code == 0 and booking.scalar(waiting) == 10
    assert [s["id"] for s in dry["steps"]] == [
        "event-activation",
        "shorter-period",
        "more-active-tokens",
        "activate-now",
    ]

    code, done = apply(cli, booking, "a3", "--apply", "--yes", "--raise-tokens", "20")
    assert code == 0, json.dumps(done["after"], indent=1)
    assert booking.scalar(waiting) == 0
    assert booking.metric_all("booking_setting_value", {"name": "event_activation"}) == [1.0, 1.0]
    assert booking.metric_all("booking_setting_value", {"name": "queue_activation_interval_s"}) == [1.0, 1.0]
    assert booking.scalar("SELECT COUNT(*) FROM queue_token WHERE status = 'ACTIVE'") <= 20
    booking.release_tokens()


def test_a_second_apply_is_refused_while_one_runs(cli: CliRunner, booking: Backend) -> None:
    from concertops.engine.locking import RunLock

    booking.preset("legacy")  # A-3 fires: event activation off
    wait_scraped(booking, 'min(booking_setting_value{name="event_activation"})', 0.0)
    before = settings_state(booking)
    with RunLock(booking.engine, "A-3", "alice (run 0000aaaa)"):
        done = cli("a3", "--apply", "--yes", env=env(booking, "prometheus"))
    assert done.returncode == 3
    assert "A-3 is being applied by alice (run 0000aaaa)" in done.stderr
    assert "Traceback" not in done.stderr
    assert settings_state(booking) == before
    refused = booking.rows(
        "SELECT step, result FROM remediation_audit WHERE runbook = 'A-3' ORDER BY audit_id DESC LIMIT 1"
    )
    assert tuple(refused[0]) == ("lock", "refused")
    # Released: the next run goes ahead.
    code, _ = apply(cli, booking, "a3", "--apply", "--yes")
    assert code == 0


def test_settings_rollback_restores_every_instance(cli: CliRunner, booking: Backend) -> None:
    environment = env(booking, "prometheus")
    start = booking.scalar("SELECT MAX(version) FROM runtime_setting")
    values = booking.metric_all("booking_setting_value", {"name": "max_active_tokens"})
    done = cli(
        "settings",
        "set",
        "max_active_tokens=33",
        "lock_wait_ms=2222",
        "-y",
        "--reason",
        "try",
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout
    assert booking.metric_all("booking_setting_value", {"name": "max_active_tokens"}) == [33.0, 33.0]
    done = cli("settings", "rollback", str(start), "-y", env=environment)
    assert done.returncode == 0, done.stderr
    assert booking.metric_all("booking_setting_value", {"name": "max_active_tokens"}) == values
    assert booking.metric_all("booking_setting_value", {"name": "lock_wait_ms"}) == [1500.0, 1500.0]
    history = json.loads(
        cli("settings", "history", "--name", "lock_wait_ms", "-f", "json", env=environment).stdout
    )
    assert [h["new_value"] for h in history[-2:]] == ["2222", "1500"]
    assert history[-1]["reason"] == f"rollback to version {start}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["settings", "set", "db_pool_size=-1"], "setting db_pool_size=-1 is below its minimum 1"),
        (["settings", "set", "pool=3"], "unknown setting 'pool'"),
        (["settings", "set", "event_activation=maybe"], "takes on/off"),
        (["settings", "rollback", "999999", "-y"], "there is no settings version 999999"),
        (["settings", "set", "max_active_tokens=5"], "confirmation needs a terminal"),
        (["audit", "--since", "yesterday"], "--since 'yesterday' is neither a duration nor a date"),
        (["a1", "--apply", "--dry-run"], "--apply and --dry-run exclude each other"),
    ],
)
def test_bad_input_is_one_clear_line(cli: CliRunner, booking: Backend, args: list[str], message: str) -> None:
    done = cli(*args, env=env(booking, "prometheus"))
    assert done.returncode == 3
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_pool_size_beyond_the_server_headroom_is_refused(booking: Backend) -> None:
    from concertops.config import Profile
    from concertops.engine.action_api import Context
    from concertops.engine.change_settings import ChangeSettings
    from concertops.model.errors import UsageError
    from concertops.model.findings import Step
    from concertops.runbooks.catalogue import SetSettingParams

    profile = Profile(
        name="tests",
        database_url=str(booking.profile.database_url),
        metrics_urls=tuple(f"{u}/metrics" for u in booking.urls),
    )
    step = Step(
        "explicit-pool",
        "Size the pool",
        "set_setting",
        SetSettingParams(setting="db_pool_size", value=60, max=500, max_share_of_max_connections=0.5),
    )
    ctx = Context(profile, booking.engine, dry_run=True, operator="t", reason="t")
    max_connections = booking.scalar("SELECT @@max_connections")
    with pytest.raises(UsageError, match=f"over 50% of max_connections={max_connections}"):
        ChangeSettings(step).prepare(ctx)  # 2 instances x 60 = 120 > 151 / 2


def test_audit_and_output_never_show_a_password(cli: CliRunner, booking: Backend) -> None:
    user, password = "concertops_ops", "Sup3r-s3cret-pw"
    database = booking.engine.url.database
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'localhost'")
    url = f"mysql+pymysql://{user}:{password}@{HOST}:{MARIADB_PORT}/{database}"
    in_query = f"mysql+pymysql://{user}@{HOST}:{MARIADB_PORT}/{database}?password={password}"
    environment = {**env(booking, "prometheus"), "CONCERTOPS_DATABASE_URL": url}
    outputs = [
        cli(
            "settings",
            "set",
            "rate_limit_rps=0",
            "lock_retry_ms=31",
            "-y",
            "--reason",
            f"INC-7 pasted from the log: {user}:{password}@db refused",
            env=environment,
        ),
        cli("settings", "history", env={**environment, "COLUMNS": "200"}),
        cli("a3", "--dry-run", "--reason", f"see mysql://{user}:{password}@db/x", env=environment),
        # Free text with a key word, and bare: masked because the profile holds that password.
        cli("a3", "--dry-run", "--reason", f"password={password}", env=environment),
        cli(
            "settings",
            "set",
            "lock_retry_ms=32",
            "-y",
            "--reason",
            f"the DBA rotated {password} at noon",
            env=environment,
        ),
        # The password in the query string connects too (PyMySQL takes it): masked like userinfo.
        cli("config", "show", env={**environment, "CONCERTOPS_DATABASE_URL": in_query}),
        cli("doctor", env={**environment, "CONCERTOPS_DATABASE_URL": in_query}),
        cli("audit", "-f", "json", "--limit", "500", env=environment),
        cli("settings", "set", "db_pool_size=abc", env=environment),
        cli("audit", env={**environment, "CONCERTOPS_DATABASE_URL": url.replace(database, "no_such_db")}),
    ]
    for done in outputs:
        assert password not in done.stdout + done.stderr
    assert "the DBA rotated *** at noon" in outputs[7].stdout  # the audit shows the reason, masked
    assert outputs[-1].returncode == 3
    # Every table concertops writes.
    for table in ("remediation_audit", "runtime_setting_history", "runtime_setting", "remediation_lock"):
        assert password not in repr(booking.rows(f"SELECT * FROM {table}")), table
    assert booking.scalar("SELECT COUNT(*) FROM runtime_setting_history WHERE reason LIKE 'INC-7%'") > 0
    booking.set(lock_retry_ms=30)


def test_ctrl_c_while_verifying_reports_what_was_applied(cli: CliRunner, booking: Backend) -> None:
    import os
    import signal
    import subprocess

    from cli_runner import CONCERTOPS, interruptible

    # Every ACTIVE slot taken: the fix runs, but the queue cannot drain, so verification keeps waiting.
    booking.preset("legacy", max_active_tokens=1, queue_activation_interval_s=5)
    booking.active_token(9400)
    for user in range(9401, 9404):
        booking.post("/queue/tokens", {"user_id": user})
    wait_for(
        lambda: max(booking.metric_all("queue_oldest_waiting_age_seconds")) > 10,
        timeout=30,
        what="the oldest WAITING token to pass 10 s",
    )
    wait_scraped(booking, "max(queue_oldest_waiting_age_seconds) > bool 10", 1.0)
    # The plan says it cannot drain the queue, why, and the option that would.
    _code, dry = apply(cli, booking, "a3", "--dry-run")
    blocked = next(s for s in dry["steps"] if s["id"] == "activate-now")["blocked"]
    assert "max_active_tokens=1" in blocked and "--raise-tokens" in blocked, blocked
    _code, raised = apply(cli, booking, "a3", "--dry-run", "--raise-tokens", "20")
    assert next(s for s in raised["steps"] if s["id"] == "activate-now")["blocked"] == ""
    # This run's rows only: an earlier test's A-3 apply a minute ago must not release the Ctrl-C early.
    before = booking.scalar("SELECT COALESCE(MAX(audit_id), 0) FROM remediation_audit")
    proc = subprocess.Popen(
        [CONCERTOPS, "a3", "--apply", "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env(booking, "prometheus")},
        preexec_fn=interruptible,
    )
    wait_for(
        lambda: (
            booking.scalar(
                "SELECT COUNT(*) FROM remediation_audit WHERE runbook = 'A-3' AND step = 'activate-now' "
                "AND result IN ('ok', 'skipped') AND audit_id > :before",
                before=before,
            )
            > 0
        ),
        timeout=30,
        what="the steps to finish",
    )
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, out + err
    assert "interrupted while verifying; every step had run" in err and "Traceback" not in err
    last = booking.rows(
        "SELECT step, result FROM remediation_audit WHERE runbook = 'A-3' ORDER BY audit_id DESC LIMIT 1"
    )
    assert tuple(last[0]) == ("verify", "interrupted")
    booking.release_tokens()
