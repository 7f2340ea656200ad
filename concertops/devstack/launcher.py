"""Run N backend instances as separate processes on consecutive ports, announced to the devstack's
Prometheus, and stop them again."""

from __future__ import annotations

import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from concertops.config import Profile
from concertops.contract.discovery import register_target, unregister_target
from concertops.devstack import processes
from concertops.model.errors import DevstackError

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Running:
    name: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def profile_env(profile: Profile) -> dict[str, str]:
    """The instance reads where its services are from the same variables the CLI honours."""
    return {
        "CONCERTOPS_DATABASE_URL": profile.database_url or "",
        "CONCERTOPS_REDIS_URL": profile.redis_url or "",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": profile.kafka_bootstrap_servers or "",
    }


def instance_name(index: int) -> str:
    return f"booking-{index}"


def start(
    root: Path, profile: Profile, instances: int, base_port: int, first_index: int = 1
) -> list[Running]:
    started: list[Running] = []
    try:
        for i in range(first_index, first_index + instances):
            name, port = instance_name(i), base_port + i - first_index
            cmd = [sys.executable, "-m", "concertops.booking", "--name", name, "--port", str(port)]
            child = processes.spawn(root, name, cmd, env={**profile_env(profile), "PYTHONUNBUFFERED": "1"})
            started.append(Running(name, port, child.pid))
        for run in started:
            _wait_healthy(root, run)
            register_target(root, run.name, f"127.0.0.1:{run.port}", {"service": "booking"})
    except BaseException:
        stop(root, [r.name for r in started])
        raise
    return started


def _wait_healthy(root: Path, run: Running) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        child = processes.recorded(root, run.name)
        if child is None or processes.exited_early(child):
            log = processes.log_file(root, run.name)
            raise DevstackError(
                f"backend instance {run.name} exited at start", f"see {log}: {processes.tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{run.url}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise DevstackError(
        f"backend instance {run.name} not healthy after {READY_TIMEOUT_S:.0f}s",
        f"see {processes.log_file(root, run.name)}",
    )


def stop(root: Path, names: list[str]) -> list[str]:
    stopped = []
    for name in names:
        unregister_target(root, name)
        if processes.stop(root, name):
            stopped.append(name)
    return stopped


def recorded(root: Path) -> list[str]:
    """Every instance started from ``root``, dead ones included (their scrape targets are still listed)."""
    pids = root / "pids"
    return sorted(p.stem for p in pids.glob("booking-*.json")) if pids.is_dir() else []


def running(root: Path) -> list[str]:
    return [n for n in recorded(root) if processes.recorded(root, n) is not None]
