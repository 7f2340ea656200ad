"""`concertops demo` as a newcomer runs it: the embedded default (SQLite, embedded Redis, Tansu, direct
scrape), no terminal, no Prometheus; the story ends green, and --keep leaves an environment that the printed
variables reach, which --stop ends."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx
from cli_runner import CliRunner


def test_demo_story_ends_green_and_keep_then_stop_leaves_nothing(cli: CliRunner, tmp_path: Path) -> None:
    state = tmp_path / "demo"
    try:
        _story_then_stop(cli, state)
    finally:
        cli("demo", "--stop", "--dir", str(state))  # whatever failed above, nothing is left running


def _story_then_stop(cli: CliRunner, state: Path) -> None:
    done = cli("demo", "--keep", "--dir", str(state), timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    story = done.stdout
    for chapter in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert chapter in story
    assert "A-3 detected after" in story and "B-2 detected after" in story
    assert re.search(r"│ A-3\s+│ [\d.]+ s\s+│ [\d.]+ s .*verified OK", story), story[-2500:]
    assert re.search(r"│ B-2\s+│ [\d.]+ s\s+│ [\d.]+ s .*verified OK", story), story[-2500:]
    assert "the service is healthy again" in story
    assert "Traceback" not in done.stderr

    # --keep: the printed variables point concertops at the running environment.
    env = dict(
        shlex.split(line.strip().removeprefix("export "))[0].split("=", 1)
        for line in story.splitlines()
        if line.strip().startswith("export CONCERTOPS_")
    )
    assert env["CONCERTOPS_DATABASE_URL"].startswith("sqlite:///")
    urls = env["CONCERTOPS_BACKEND_URLS"].split(",")
    checked = cli("check", "--format", "json", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert all(httpx.get(f"{u}/healthz", timeout=5).status_code == 200 for u in urls)

    stopped = cli("demo", "--stop", "--dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert "kafka" in stopped.stdout and "redis" in stopped.stdout
    for url in urls:
        try:
            httpx.get(f"{url}/healthz", timeout=2)
        except httpx.TransportError:
            continue
        raise AssertionError(f"{url} still answers after demo --stop")
