"""Game days share the real stack's fixtures (tests/stack_fixtures.py) and report their timings together."""

from __future__ import annotations

import pytest

_TIMES: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="session")
def times() -> dict[str, tuple[float, float]]:
    """incident → (seconds to detect, seconds to recover), filled by each game day that passed."""
    return _TIMES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIMES:
        return
    terminalreporter.section("game days")
    terminalreporter.write_line(f"{'incident':<10}{'detected after':>16}{'recovered after':>17}")
    for incident, (detect, recover) in sorted(_TIMES.items()):
        terminalreporter.write_line(f"{incident:<10}{detect:>14.1f} s{recover:>15.1f} s")
