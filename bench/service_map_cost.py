"""What the service map adds to every probe: importing the map and binding code, loading the default map
and binding every page's signal, measured in a fresh process each time (as a `check` pays it).

    .venv/bin/python bench/service_map_cost.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = r"""
import time
from concertops.runbooks.registry import all_runbooks
signals = [s for rb in all_runbooks() for s in rb.page.signals]
started = time.perf_counter()
from concertops.contract.binding import bind
from concertops.contract.service_map import load
shape = load(None)
bound = [bind(s, shape) for s in signals]
print(time.perf_counter() - started)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    runs = [
        float(subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout)
        for _ in range(args.runs)
    ]
    print(
        f"median {statistics.median(runs) * 1000:.1f} ms, min {min(runs) * 1000:.1f} ms, "
        f"max {max(runs) * 1000:.1f} ms over {args.runs} runs"
    )


if __name__ == "__main__":
    main()
