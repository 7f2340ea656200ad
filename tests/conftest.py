"""Fixtures for every test: an isolated config directory and the real ``concertops`` binary."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports concertops: under pytest-xdist each worker gets a devstack of its own (see
# tests/workers.py), and every port, state directory and server follows from these variables.
import workers

workers.configure()

import pytest  # noqa: E402
from cli_runner import CliRunner, run_cli  # noqa: E402

# The real stack's fixtures (database, backend, broker), shared by tests/integration and tests/gameday.
from stack_fixtures import (  # noqa: F401, E402
    backend,
    booking,
    broker,
    database_url,
    production_broker,
    stack,
    step10_service,
)

# Variables a developer may have set that must not leak into tests; the state dir and the port offset are
# kept on purpose (they say where this worker's devstack is).
_LEAKY = [k for k in os.environ if k.startswith("CONCERTOPS_") and k not in workers.KEPT]


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No developer config, no stray CONCERTOPS_* variable, and a fixed terminal width."""
    for key in _LEAKY:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli() -> CliRunner:
    """Run the installed ``concertops`` command as a user would; returns the completed process."""
    return run_cli


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so `pytest -m integration` (or `-m "not integration"`) selects them."""
    for item in items:
        parts = item.path.parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "gameday" in parts:
            item.add_marker(pytest.mark.gameday)
