"""The CLI starts fast because heavy libraries load only in the command that needs them: importing the
command tree (what `concertops --help` does) must not pull them in."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "confluent_kafka", "httpx", "prometheus_api_client", "fastapi", "rich.table")


def test_the_command_tree_imports_no_heavy_library() -> None:
    probe = (
        f"import sys; import concertops.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
