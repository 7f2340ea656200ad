"""concertops as a user installs it: the built wheel in a fresh virtual environment, run from a folder far
from the source tree, against the devstack. The runbook pages and alert rules must come from the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
from checking import SCHEMA

from concertops.cli.main import app
from concertops.runbooks.pages import RUNBOOK_IDS

ROOT = Path(__file__).parents[2]


def _clean() -> dict[str, str]:
    """The test's environment, without anything that would lead back to the source tree."""
    return {k: v for k, v in os.environ.items() if k not in ("CONCERTOPS_RUNBOOKS_DIR", "PYTHONPATH")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, worker_id: str, stack: None) -> Path:
    """The ``concertops`` command of a fresh venv holding only the wheel (and what it depends on): built
    once per test run, by the first worker that needs it, under a lock the others wait on."""
    from filelock import FileLock

    # The run's temporary root, shared by its workers (each has a folder of its own below it).
    shared = (
        tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    )
    where = shared / "installed-wheel"
    command = where / "venv" / "bin" / "concertops"
    with FileLock(str(shared / "installed-wheel.lock")):
        if not command.exists():
            _install(where)
    return command


def _install(where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(where), str(ROOT)],
        check=True,
        timeout=240,
        env=_clean(),
    )
    (wheel,) = where.glob("concertops-*.whl")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=_clean())
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
        check=True,
        timeout=600,
        env=_clean(),
    )


def _run(command: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=command.parents[2],  # no runbooks/ or alerts/ folder of the source tree around
        env={**_clean(), "COLUMNS": "100"},
    )


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    context = typer.Context(group)
    for name in group.list_commands(context):
        yield (*prefix, name)
        command = group.get_command(context, name)
        if hasattr(command, "list_commands"):
            yield from _command_paths(command, (*prefix, name))


def test_the_wheel_holds_the_pages_and_rules_and_runs_from_site_packages(installed: Path) -> None:
    python = installed.with_name("python")
    where = subprocess.run(
        [str(python), "-c", "import concertops, pathlib; print(pathlib.Path(concertops.__file__).parent)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=installed.parents[2],
        env=_clean(),
    ).stdout.strip()
    package = Path(where)
    assert "site-packages" in package.parts
    assert sorted(p.stem for p in (package / "runbooks" / "pages").glob("?-?.md")) == list(RUNBOOK_IDS)
    assert (package / "alerts" / "concertops.yml").is_file()


def test_every_subcommand_answers_help_from_the_wheel(installed: Path) -> None:
    group = typer.main.get_command(app)
    paths = list(_command_paths(group))
    assert len(paths) > 20
    failed = {}
    for path in paths:
        done = _run(installed, *path, "--help")
        if done.returncode != 0 or "Usage:" not in done.stdout:
            failed[" ".join(path)] = done.stderr.strip()[-300:]
    assert failed == {}


def test_runbooks_list_and_check_work_from_the_wheel_against_the_devstack(installed: Path) -> None:
    listed = _run(installed, "runbooks", "list")
    assert listed.returncode == 0, listed.stderr
    assert all(runbook_id in listed.stdout for runbook_id in RUNBOOK_IDS)
    checked = _run(installed, "check", "--format", "json")
    assert checked.returncode in (0, 1, 2, 3), checked.stderr
    document = json.loads(checked.stdout)
    jsonschema.validate(document, SCHEMA)
    assert [r["id"] for r in document["runbooks"]] == list(RUNBOOK_IDS)
    # The devstack's Prometheus answered: the metric signals were read there, not skipped.
    assert document["sources"].get("prometheus") == "ok", document["sources"]
