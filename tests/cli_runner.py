"""Run the installed ``concertops`` command in tests exactly as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

CONCERTOPS = str(Path(sys.executable).with_name("concertops"))

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def interruptible() -> None:
    """``preexec_fn`` for a child a test interrupts: Ctrl-C reaches it as from a terminal, even when the
    test run itself was started as a shell's background job (which starts with SIGINT ignored, and a
    child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
