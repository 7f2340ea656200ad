"""Which of concertops's files ``b2 --apply --yes`` runs on the production shape, in the order their code
first runs, with their lines: the trace README's "How a runbook runs" lists.

A profile hook (every thread) records the first call into each file of the package; a module imported
but never called (its top level only) counts too, since its top level ran. Needs the devstack (MariaDB,
Redis, the broker) for the production shape's stores.

    .venv/bin/python bench/apply_trace.py [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "concertops"


def trace(argv: list[str], env: dict[str, str]) -> tuple[list[str], set[str], int]:
    """(files in first-run order, those first run on another thread than the main one, the exit code)."""
    seen: dict[str, None] = {}
    threaded: set[str] = set()

    def hook(frame: Any, _event: str, _arg: Any) -> None:
        name = frame.f_code.co_filename
        if name not in seen and name.startswith(str(PACKAGE)):
            seen[name] = None
            if threading.current_thread() is not threading.main_thread():
                threaded.add(name)

    os.environ.update(env)
    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        from concertops.cli.main import run

        with contextlib.redirect_stdout(io.StringIO()):
            code = run(argv)  # with argv: returns, without ending the process
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]

    def relative(f: str) -> str:
        return str(Path(f).relative_to(PACKAGE))

    return [relative(f) for f in seen], {relative(f) for f in threaded}, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092", help="a broker (the devstack's by default)")
    parser.add_argument(
        "--env-json", type=Path, help="trace on the service this environment names (seeded by the caller)"
    )
    args = parser.parse_args()
    # The tests' helpers, on the stores the environment names (a test worker's own devstack included).
    sys.path.insert(0, str(ROOT / "tests"))
    import redis
    from prod_shape import (
        create_database,
        create_topics_and_groups,
        drop_database,
        production_env,
        seed_holds,
    )

    if args.env_json is not None:
        files, threaded, code = trace(["b2", "--apply", "--yes"], json.loads(args.env_json.read_text()))
        _report(files, threaded, code, args.json, "the service of --env-json")
        return
    bootstrap = args.bootstrap
    database, url = create_database()
    try:
        seed_holds(url)
        create_topics_and_groups(bootstrap)
        with tempfile.TemporaryDirectory() as state:
            env = production_env(url, bootstrap, 13, Path(state) / "state.sqlite")
            redis.Redis.from_url(env["CONCERTOPS_REDIS_URL"]).flushdb()
            initialised = subprocess.run(
                [str(Path(sys.executable).with_name("concertops")), "state", "init"],
                env={**os.environ, **env},
                capture_output=True,
            )
            assert initialised.returncode == 0, initialised.stderr
            files, threaded, code = trace(["b2", "--apply", "--yes"], env)
    finally:
        drop_database(database)
    _report(files, threaded, code, args.json, "the production shape")


def _report(files: list[str], threaded: set[str], code: int, as_json: bool, where: str) -> None:
    lines = {f: sum(1 for _ in (PACKAGE / f).open()) for f in files}
    if as_json:
        summary = {
            "exit_code": code,
            "files": lines,
            "threaded": sorted(threaded),  # first run by a probe thread: their order may vary run to run
            "total_lines": sum(lines.values()),
        }
        print(json.dumps(summary, indent=2))
        return
    for n, (f, count) in enumerate(lines.items(), 1):
        print(f"{n:3d}. {f} ({count})")
    total = sum(lines.values())
    print(f"b2 --apply --yes on {where}: exit {code}, {len(files)} files, {total} lines")


if __name__ == "__main__":
    main()
