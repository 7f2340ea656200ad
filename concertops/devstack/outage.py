"""A broker outage on demand (`simulate incident B-1/B-4`, game days): stop the broker this state directory
started, and start the very same command again when the outage ends.

Only a broker recorded here can be stopped: simulate never signals a process it did not start."""

from __future__ import annotations

import time

from concertops.contract.discovery import state_dir
from concertops.devstack import probes, processes
from concertops.model.errors import DevstackError

BROKER = "kafka"


def recorded_broker() -> processes.Child:
    """The broker this state directory started, or a DevstackError saying how to get one."""
    root = state_dir()
    child = processes.recorded(root, BROKER)
    if child is None:
        raise DevstackError(
            f"no Kafka broker was started from {root}, so this outage cannot be caused here",
            "run `concertops devstack up` (or `concertops demo --keep`) and point CONCERTOPS_STATE_DIR at it",
        )
    return child


def stop_broker(bootstrap: str) -> None:
    processes.stop(state_dir(), BROKER)
    host, port = _split(bootstrap)
    processes.wait_until(lambda: not probes.tcp_open(host, port), timeout=10)


def start_broker(child: processes.Child, bootstrap: str, timeout_s: float = 20.0) -> None:
    """Start the broker again with its recorded command; its topics are created anew (memory storage)."""
    from concertops.devstack.components import create_topics

    host, port = _split(bootstrap)
    if not probes.tcp_open(host, port):
        processes.spawn(state_dir(), BROKER, child.cmd)
    deadline = time.monotonic() + timeout_s
    while not probes.kafka_ready(host, port):
        if time.monotonic() > deadline:
            raise DevstackError(f"the broker at {bootstrap} did not come back within {timeout_s:.0f}s")
        time.sleep(0.2)
    create_topics(bootstrap)


def _split(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port)
