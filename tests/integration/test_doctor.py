"""`concertops doctor` against the real local stack."""

from __future__ import annotations

import json

from cli_runner import CliRunner


def test_every_source_of_the_local_profile_answers(stack: None, cli: CliRunner) -> None:
    done = cli("doctor", "--json")
    rows = {c["source"]: c for c in json.loads(done.stdout)["checks"]}
    checks = {name: c for name, c in rows.items() if not name.startswith("map: ") and name != "state store"}
    # Plus the /metrics of any backend instance registered with the devstack (the local profile scrapes them).
    assert (
        {"database", "redis", "kafka", "prometheus", "privileges"}
        <= set(checks)
        <= {"database", "redis", "kafka", "prometheus", "metrics", "privileges"}
    )
    assert all(c["ok"] for c in checks.values()), checks
    assert "MariaDB" in checks["database"]["detail"]
    assert checks["redis"]["detail"].startswith("Redis ")
    assert checks["prometheus"]["detail"].startswith("Prometheus 2.")
    assert "B-3 needs PROCESS: yes" in checks["privileges"]["detail"]  # root has every privilege
    # The reference map held against the local database and broker: what is there, or what is missing by
    # the map's field (the local database has the twin's tables once `concertops backend migrate` ran).
    assert {"map: database", "map: kafka"} <= set(rows)
    for name in ("map: database", "map: kafka"):
        row = rows[name]
        assert row["ok"] or "(tables." in row["detail"] or "(kafka." in row["detail"], row
    # The twin keeps concertops's state in its own database, once migrated.
    state = rows["state store"]
    assert state["ok"] or state["fix"].startswith("run `concertops state init`"), state
    assert state["detail"].startswith("the reference service's own database") or not state["ok"], state
    assert done.returncode == (0 if all(c["ok"] for c in rows.values()) else 3), done.stdout + done.stderr


def test_a_dead_source_is_named_with_its_fix_and_no_password(stack: None, cli: CliRunner) -> None:
    done = cli(
        "doctor",
        "--json",
        env={
            "CONCERTOPS_DATABASE_URL": "mysql+pymysql://app:hunter2@127.0.0.1:1/x",
            "CONCERTOPS_PROMETHEUS_URL": "",
        },
    )
    assert done.returncode == 3
    assert "hunter2" not in done.stdout + done.stderr
    checks = {c["source"]: c for c in json.loads(done.stdout)["checks"]}
    assert "prometheus" not in checks  # not configured, so not checked
    assert checks["database"]["ok"] is False
    assert "CONCERTOPS_DATABASE_URL" in checks["database"]["fix"]
    assert checks["database"]["target"] == "mysql+pymysql://app:***@127.0.0.1:1/x"
    assert checks["redis"]["ok"] and checks["kafka"]["ok"]
