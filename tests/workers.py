"""One devstack per pytest-xdist worker.

Some of what the tests do is server-wide: a broker outage, B-3's count of the server's connections and its
kills, Prometheus summing every backend it scrapes. Shared between workers, one worker's incident would be
another's noise. So each worker runs its own stack: worker ``gwN`` moves every devstack port by
``N * 100`` (``CONCERTOPS_DEVSTACK_PORT_OFFSET``) and keeps its state in ``workers/gwN`` under the run's
state directory. ``gw0`` (and a run without xdist) uses the devstack `make test` started; the others start
their own servers (MariaDB and Redis included: nothing answers on their moved ports) and stop them at the
end. Backend instances take ports from a block of the worker's own.
"""

from __future__ import annotations

import os
from pathlib import Path

KEPT = ("CONCERTOPS_STATE_DIR", "CONCERTOPS_DEVSTACK_PORT_OFFSET", "CONCERTOPS_TIMEOUT")
# The commands' own time budget (--timeout, start-up included) for every command a test starts: a busy
# machine (parallel workers, a CPU hog) must not turn a measurement into "timed out". A test about the
# budget passes --timeout, or CONCERTOPS_TIMEOUT="" for the documented default.
TEST_TIMEOUT_S = "30"
PORT_STEP = 100
MAX_WORKERS = 8  # the moved devstack ports stay below the backend blocks (20000 and up)


def index() -> int:
    """This worker's number: 0 for gw0 and for a run without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def owns_stack() -> bool:
    """True when this worker started (and stops) its own devstack."""
    return index() > 0


def configure() -> None:
    os.environ["CONCERTOPS_TIMEOUT"] = TEST_TIMEOUT_S
    n = index()
    if n >= MAX_WORKERS:
        raise RuntimeError(f"at most {MAX_WORKERS} workers (pytest -n): their devstack ports would collide")
    if n == 0:
        return
    base = os.environ.get("CONCERTOPS_STATE_DIR") or str(Path.cwd() / ".devstack")
    offset = int(os.environ.get("CONCERTOPS_DEVSTACK_PORT_OFFSET") or 0)  # a developer's own, kept
    os.environ["CONCERTOPS_STATE_DIR"] = str(Path(base) / "workers" / f"gw{n}")
    os.environ["CONCERTOPS_DEVSTACK_PORT_OFFSET"] = str(offset + n * PORT_STEP)


def port_block_start() -> int:
    """Where this worker's backend instances and stand-in servers look for free ports: 1,000 of them per
    100 of port offset, so two runs on moved devstacks keep apart too."""
    offset = int(os.environ.get("CONCERTOPS_DEVSTACK_PORT_OFFSET") or 0)
    return 20_000 + 10 * offset
