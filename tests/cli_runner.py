"""Run the installed ``concertops`` command in tests exactly as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

CONCERTOPS = str(Path(sys.executable).with_name("concertops"))

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONCERTOPS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env={**os.environ, **(env or {})},
    )
