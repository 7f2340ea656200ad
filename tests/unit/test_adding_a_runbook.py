"""README's "Adding a runbook", done in a temporary copy of the project: a C-1 page, its module, an alert, an
incident recipe and a game-day stub, and nothing else edited. The command, `check`, `runbooks list` and the
registry test must take it; the registry test must refuse it while its game day is missing."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

PAGE = """---
id: C-1
title: Cancelled holds pile up
summary: cancelled holds piling up
module: c1_cancelled_holds
signals:
  - name: cancelled_holds
    decisive: true
    title: CANCELLED reservations
    kind: sql
    query: SELECT COUNT(*) FROM {reservation} WHERE {reservation.status} = 'CANCELLED'
    warning: 0
    critical: 100
    main: true
remediation: []
---
# C-1 Cancelled holds pile up

Meaning, impact, diagnosis and mitigation, as every page has them.
"""

MODULE = '''"""C-1: cancelled holds pile up."""

from concertops.runbooks.verdicts import Firing


def verdict(firing: Firing) -> str | None:
    return "holds are being cancelled" if firing("cancelled_holds") else None
'''

ALERT = """groups:
  - name: concertops-c1
    rules:
      - alert: CancelledHoldsPileUp
        expr: max(reservation_cancelled_holds) > 0
        for: 5m
        labels: {severity: warn, priority: P2, runbook: C-1, signal: cancelled_holds}
        annotations:
          summary: "Cancelled holds pile up"
          runbook_url: runbooks/C-1.md
"""

RECIPE = '''"""C-1's incident, caused on the reference service: cancelled holds pile up."""

from concertops.simulate import recipe_kit as kit
from concertops.simulate.service import Service


def cause(svc: Service, run: kit.Run) -> None:
    run.did("nothing yet")


RECIPE = kit.Recipe("C-1", "cancelled holds pile up", "holds are cancelled", cause, ("cancelled_holds",))
'''

GAME_DAY = '''

def test_c1_cancelled_holds() -> None:
    """C-1's game day: a stub until its recipe causes the incident."""
'''


def _copy(tmp_path: Path) -> Path:
    skip = shutil.ignore_patterns(
        ".venv", ".git", ".devstack", "__pycache__", "*.egg-info", ".pytest_cache", "bench", "docs"
    )
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, symlinks=True, ignore=skip)
    return repo


def _env(repo: Path, **extra: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CONCERTOPS_")}
    return {**kept, "PYTHONPATH": str(repo), "COLUMNS": "200", **extra}


def _concertops(repo: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from concertops.cli.main import run; sys.argv[0] = 'concertops'; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=repo,
        env=_env(repo, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _registry_test(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "tests/unit/test_runbook_pages.py",
            "-k",
            "every_runbook_id or option_comes",
        ],
        cwd=repo,
        env=_env(repo),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_c1_runbook_takes_five_files_and_no_other_edit(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    package = repo / "concertops"
    (package / "runbooks/pages/C-1.md").write_text(PAGE)
    (package / "runbooks/c1_cancelled_holds.py").write_text(MODULE)
    (package / "alerts/c1.yml").write_text(ALERT)
    (package / "simulate/recipes/c1.py").write_text(RECIPE)

    missing = _registry_test(repo)
    assert missing.returncode == 1 and "C-1: no game day test" in missing.stdout, missing.stdout[-3000:]

    with (repo / "tests/gameday/test_gamedays.py").open("a") as gamedays:
        gamedays.write(GAME_DAY)
    complete = _registry_test(repo)
    assert complete.returncode == 0, complete.stdout[-3000:] + complete.stderr[-2000:]

    helped = _concertops(repo, "c1", "--help")
    assert helped.returncode == 0 and "C-1: cancelled holds piling up" in helped.stdout, helped.stderr
    listed = _concertops(repo, "runbooks", "list")
    assert listed.returncode == 0 and "C-1" in listed.stdout and "concertops c1" in listed.stdout

    # `check` measures it: one CANCELLED hold in the service's database is a WARNING (exit 1).
    database = tmp_path / "service.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE reservation (reservation_id INTEGER PRIMARY KEY, status TEXT)")
        conn.execute("INSERT INTO reservation (status) VALUES ('CANCELLED'), ('HELD')")
    checked = _concertops(
        repo, "check", "C-1", "--format", "json", CONCERTOPS_DATABASE_URL=f"sqlite:///{database}"
    )
    report = json.loads(checked.stdout)
    assert [r["id"] for r in report["runbooks"]] == ["C-1"], checked.stderr
    assert report["runbooks"][0]["status"] == "WARNING" and checked.returncode == 1, checked.stdout
    assert report["runbooks"][0]["verdict"] == "holds are being cancelled"
