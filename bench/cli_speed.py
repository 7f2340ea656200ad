"""CLI start-up and check speed.

1. ``concertops --help`` against a bare typer app declaring the same command names (the framework's floor),
   and against a bare ``import typer``.
2. ``concertops check --format json`` (all seven runbooks) against the slowest single probe, measured by
   running each signal's probe alone with the same sources, against the same check warm in-process, and
   against the bare interpreter (``python -c pass``).
3. Where the command's start-up goes: the five costliest imports of one ``check --format json``, from
   ``-X importtime`` (cumulative, top-level modules; imports in the probe threads included).

Run against the real stack with a backend serving (``concertops devstack up``,
``concertops backend serve -n 2 --detach``):

    .venv/bin/python bench/cli_speed.py --runs 20

Writes ``bench/results/cli_speed.json``; BENCHMARKS.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).with_name("concertops")

BARE_APP = """
import typer
app = typer.Typer()
for name in {names!r}:
    app.command(name)(lambda: None)
for group in {groups!r}:
    sub = typer.Typer()
    sub.command("x")(lambda: None)
    app.add_typer(sub, name=group)
app()
"""


def timed(cmd: list[str], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {"median_s": statistics.median(samples), "min_s": samples[0], "max_s": samples[-1]}


def help_speed(runs: int) -> dict[str, object]:
    names = ["doctor", "check", "a1", "a2", "a3", "b1", "b2", "b3", "b4"]
    groups = ["devstack", "backend", "config", "simulate", "runbooks"]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(BARE_APP.format(names=names, groups=groups))
    ours = timed([str(BIN), "--help"], runs)
    bare = timed([sys.executable, script.name, "--help"], runs)
    importing = timed([sys.executable, "-c", "import typer"], runs)
    return {
        "concertops --help": ours,
        "bare typer app --help": bare,
        "import typer": importing,
        "ratio_vs_bare_app": ours["median_s"] / bare["median_s"],
        "bare_app_vs_import_typer": bare["median_s"] / importing["median_s"],
    }


def check_speed(runs: int) -> dict[str, object]:
    from concertops.config import load_profile
    from concertops.engine.check import run_check
    from concertops.engine.probe import probe
    from concertops.runbooks.registry import all_runbooks

    whole = timed([str(BIN), "check", "--format", "json"], runs)
    bare = timed([sys.executable, "-c", "pass"], runs)
    profile = load_profile()
    runbooks = all_runbooks()
    run_check(profile, runbooks, 5.0)  # the first use pays the imports; the rest is the check itself
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        run_check(profile, runbooks, 5.0)
        warm.append(time.perf_counter() - started)
    signals = {s.describe_query(): s for rb in all_runbooks() for s in rb.page.signals}
    slowest: dict[str, float] = {}
    for query, signal in signals.items():
        per = []
        for _ in range(max(3, runs // 4)):
            started = time.perf_counter()
            probe(profile, [signal], timeout_s=5.0)
            per.append(time.perf_counter() - started)
        slowest[f"{signal.kind}: {query[:60]}"] = statistics.median(per)
    name, worst = max(slowest.items(), key=lambda kv: kv[1])
    return {
        "concertops check --format json": whole,
        "check in-process, warm": {"median_s": statistics.median(warm)},
        "bare interpreter": bare,
        "ratio_vs_warm": whole["median_s"] / statistics.median(warm),
        "slowest_probe": {"signal": name, "median_s": worst},
        "ratio_vs_slowest_probe": whole["median_s"] / worst,
        "warm_ratio_vs_slowest_probe": statistics.median(warm) / worst,
        "probes": dict(sorted(slowest.items(), key=lambda kv: -kv[1])[:8]),
    }


_IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)")


def startup_costs(top: int = 5) -> dict[str, float]:
    """The costliest imports of one ``check --format json``: seconds per package where another imported it,
    cumulative (a package's time includes what it imported, so two of them may overlap: pydantic's is
    within typer's, requests's within the Prometheus client's)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(BIN), "check", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    # -X importtime prints a module after what it imported, one space of indent per level: a module's
    # importer is the next line less indented. Counted: a package's entry points, where another imported it.
    entries = [
        (int(m.group(1)) / 1e6, len(m.group(2)), m.group(3))
        for m in map(_IMPORT_LINE.match, done.stderr.splitlines())
        if m
    ]
    costs: dict[str, float] = {}
    for i, (seconds, depth, name) in enumerate(entries):
        importer = next((e[2] for e in entries[i + 1 :] if e[1] < depth), "")
        root = name.split(".")[0]
        if root != importer.split(".")[0]:
            costs[root] = costs.get(root, 0.0) + seconds
    ours = {k: v for k, v in costs.items() if k != "concertops"}
    return dict(sorted(ours.items(), key=lambda kv: -kv[1])[:top])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    results = {
        "help": help_speed(args.runs),
        "check": check_speed(args.runs),
        "startup_costs_s": startup_costs(),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "cli_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
