"""`simulate incident` refuses what it cannot do in one clear line, before touching any service."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import CliRunner


@pytest.mark.parametrize(
    ("incident", "extra", "message"),
    [
        ("Z-9", {}, "unknown incident 'Z-9' — use one of: A-1, A-2, A-3, B-1, B-2, B-3, B-4"),
        ("A-1", {"CONCERTOPS_BACKEND_URLS": ""}, "no backend URL to drive"),
        ("b3", {}, "B-3 needs MySQL/MariaDB: idle connections live in its processlist, SQLite has none"),
    ],
)
def test_what_cannot_be_simulated_is_one_line(
    cli: CliRunner, tmp_path: Path, incident: str, extra: dict[str, str], message: str
) -> None:
    env = {
        "CONCERTOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'nothing.sqlite'}",
        "CONCERTOPS_BACKEND_URLS": "http://127.0.0.1:9",
        "CONCERTOPS_METRICS_URLS": "http://127.0.0.1:9/metrics",
        **extra,
    }
    done = cli("simulate", "incident", incident, env=env)
    assert done.returncode == 3
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
