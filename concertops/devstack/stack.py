"""Bring the local stack up, report on it, and take down only what we started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from concertops.devstack import processes
from concertops.devstack.components import COMPONENTS, HOST, MARIADB_PORT, Component, by_name, prometheus_url
from concertops.model.errors import DevstackError

Report = Callable[["ComponentState"], None]


@dataclass(frozen=True)
class ComponentState:
    name: str
    state: str  # reused | started | running | failed | stopped | not running | healthy | down
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state not in {"failed", "down"}


class _Apt:
    """Installs missing Debian packages, running ``apt-get update`` at most once per ``up``."""

    def __init__(self, root: Path) -> None:
        self.log = processes.log_file(root, "apt")
        self.updated = False

    def available(self) -> bool:
        return os.geteuid() == 0 and shutil.which("apt-get") is not None

    def install(self, packages: tuple[str, ...]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with self.log.open("ab") as log:
            if not self.updated:
                subprocess.run(
                    ["apt-get", "update", "-qq"], stdout=log, stderr=subprocess.STDOUT, env=env, check=False
                )
                self.updated = True
            done = subprocess.run(
                ["apt-get", "install", "-y", "-qq", *packages],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                check=False,
            )
        if done.returncode != 0:
            raise DevstackError(
                f"apt-get install {' '.join(packages)} failed",
                f"see {self.log}: {processes.tail(self.log, 1)}",
            )


def _start(root: Path, component: Component, apt: _Apt) -> ComponentState:
    try:
        cmd = component.command(root)
    except DevstackError as missing:
        if not (component.packages and apt.available()):
            return ComponentState(component.name, "failed", missing.one_line())
        try:
            apt.install(component.packages)
            cmd = component.command(root)
        except (DevstackError, subprocess.CalledProcessError) as exc:
            return ComponentState(component.name, "failed", str(exc))
    except subprocess.CalledProcessError as exc:
        return ComponentState(component.name, "failed", f"{exc.cmd[0]} exited {exc.returncode}")
    child = processes.spawn(root, component.name, cmd, env=component.env())
    log = processes.log_file(root, component.name)
    if (
        processes.wait_until(lambda: component.ready() or processes.exited_early(child), component.timeout)
        and component.ready()
    ):
        if component.after_start:
            component.after_start()
        return ComponentState(component.name, "started", f"pid {child.pid}, 127.0.0.1:{component.port}")
    processes.stop(root, component.name)
    why = "exited" if processes.exited_early(child) else f"not ready after {component.timeout:.0f}s"
    return ComponentState(component.name, "failed", f"{why}; log {log}: {processes.tail(log)}")


def up(root: Path, report: Report = lambda _: None, targets_timeout: float = 30.0) -> list[ComponentState]:
    """Start every component that is not already answering. On any failure, stop what this call started."""
    root.mkdir(parents=True, exist_ok=True)
    apt = _Apt(root)
    states: list[ComponentState] = []
    started_now: list[str] = []
    for component in COMPONENTS:
        ours = processes.recorded(root, component.name)
        if component.ready():
            if ours:
                state = ComponentState(
                    component.name, "running", f"pid {ours.pid}, 127.0.0.1:{component.port}"
                )
            elif component.reusable:
                state = ComponentState(
                    component.name, "reused", f"already answering on 127.0.0.1:{component.port}"
                )
            else:
                state = ComponentState(
                    component.name,
                    "failed",
                    f"port {component.port} is taken by a process the devstack did not start",
                )
        else:
            state = _start(root, component, apt)
            if state.state == "started":
                started_now.append(component.name)
        report(state)
        states.append(state)
        if state.name == "mariadb" and state.ok:
            _ensure_database()

    if all(s.ok for s in states):
        targets = wait_for_targets(targets_timeout)
        report(targets)
        states.append(targets)
    if not all(s.ok for s in states):
        for name in reversed(started_now):
            processes.stop(root, name)
    return states


def stop_component(root: Path, name: str) -> bool:
    """Stop one component the devstack started (game days: a broker outage). False if it was not ours."""
    by_name(name)
    return processes.stop(root, name)


def start_component(root: Path, name: str) -> ComponentState:
    component = by_name(name)
    if component.ready():
        return ComponentState(name, "running")
    return _start(root, component, _Apt(root))


def down(root: Path) -> list[ComponentState]:
    """Stop the processes this devstack started (by their recorded PIDs); leave reused services alone."""
    states = []
    for component in reversed(COMPONENTS):
        if processes.stop(root, component.name):
            states.append(ComponentState(component.name, "stopped"))
        else:
            states.append(ComponentState(component.name, "not running", "not started by the devstack"))
    return states


def status(root: Path) -> list[ComponentState]:
    states = []
    for component in COMPONENTS:
        ours = processes.recorded(root, component.name)
        owner = f"pid {ours.pid}" if ours else "reused"
        if component.ready():
            states.append(ComponentState(component.name, "healthy", f"{owner}, 127.0.0.1:{component.port}"))
        else:
            states.append(
                ComponentState(
                    component.name,
                    "down",
                    f"nothing answers on 127.0.0.1:{component.port} — run: concertops devstack up",
                )
            )
    if any(s.name == "prometheus" and s.ok for s in states):
        states.append(wait_for_targets(0))
    return states


def prometheus_targets() -> list[dict[str, str]]:
    with urllib.request.urlopen(f"{prometheus_url()}/api/v1/targets?state=active", timeout=2) as resp:
        body = json.load(resp)
    return [
        {
            "job": t["labels"].get("job", ""),
            "instance": t["labels"].get("instance", ""),
            "health": t["health"],
            "error": t.get("lastError", ""),
        }
        for t in body["data"]["activeTargets"]
    ]


def wait_for_targets(timeout: float) -> ComponentState:
    """Wait (bounded) until Prometheus reports every scrape target up."""
    bad: list[dict[str, str]] = []
    total = 0

    def all_up() -> bool:
        nonlocal bad, total
        try:
            targets = prometheus_targets()
        except (OSError, ValueError, KeyError):
            return False
        total = len(targets)
        bad = [t for t in targets if t["health"] != "up"]
        return total > 0 and not bad

    if processes.wait_until(all_up, timeout, interval=0.5):
        return ComponentState("targets", "healthy", f"Prometheus reports {total}/{total} scrape targets up")
    listing = ", ".join(f"{t['job']}@{t['instance']} {t['health']}" for t in bad) or "none reported"
    return ComponentState("targets", "down", f"{total - len(bad)}/{total} targets up ({listing})")


def _ensure_database(name: str = "concertops") -> None:
    """The built-in ``local`` profile's database."""
    import pymysql

    conn = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    finally:
        conn.close()
