"""README's "How a runbook runs" is the trace of a real ``b2 --apply --yes`` on the production shape:
``bench/apply_trace.py`` runs it and lists every file of the package whose code ran, in order."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.integration


def test_the_readme_lists_the_files_b2_apply_runs_on_the_production_shape(production_broker: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/apply_trace.py"), "--json", "--bootstrap", production_broker],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    traced = json.loads(done.stdout)
    assert traced["exit_code"] == 0, traced
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- trace: b2 --apply --yes, step10 -->")[1].split("<!-- end trace -->")[0]
    listed = re.findall(r"^\d+\. `([^`]+)`$", block, re.M)
    assert sorted(listed) == sorted(traced["files"]), "README's trace differs: rerun bench/apply_trace.py"
    # In order, but for files a probe thread ran first: threads may meet them in another order.
    threaded = set(traced["threaded"])
    in_order = [f for f in traced["files"] if f not in threaded]
    assert [f for f in listed if f not in threaded] == in_order, "README's order differs: rerun the trace"
