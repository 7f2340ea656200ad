"""Start and stop the devstack's own child processes, remembered by PID file.

A PID file records the PID and the process start time, so ``down`` never signals a process that merely
reused the PID of one we started. The start time is compared in clock ticks since boot where the system
gives them (``/proc/<pid>/stat``): a wall-clock start time moves when the clock is stepped (a resumed
virtual machine, NTP), and every child would then look like a stranger.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Child:
    name: str
    pid: int
    started: float
    cmd: list[str]
    ticks: int = 0  # start time in clock ticks since boot (0 where unknown)


def start_ticks(pid: int) -> int:
    """A process's start time in clock ticks since boot (Linux), immune to wall-clock steps; 0 elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0
    # After the command name in parentheses (which may hold spaces), field 22 of the line is the 20th.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else 0


# The process handles of children started by this process, so their exit status can be read back.
_HANDLES: dict[int, subprocess.Popen[bytes]] = {}


def exit_status(pid: int) -> int | None:
    """Exit code of a child this process started (negative: the signal that killed it); None if unknown."""
    handle = _HANDLES.get(pid)
    return handle.poll() if handle is not None else None


def _pid_file(root: Path, name: str) -> Path:
    return root / "pids" / f"{name}.json"


def log_file(root: Path, name: str) -> Path:
    return root / "logs" / f"{name}.log"


def spawn(root: Path, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Child:
    """Start ``cmd`` detached from our terminal, its output in ``logs/NAME.log``, and record it."""
    (root / "pids").mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    with log_file(root, name).open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal must not kill the stack
            env={**os.environ, **(env or {})},
            cwd=root,
        )
    _HANDLES[proc.pid] = proc
    started = psutil.Process(proc.pid).create_time()
    child = Child(name=name, pid=proc.pid, started=started, cmd=cmd, ticks=start_ticks(proc.pid))
    _pid_file(root, name).write_text(json.dumps(child.__dict__), encoding="utf-8")
    return child


def recorded(root: Path, name: str) -> Child | None:
    """The child we started under ``name`` if it is still that very process."""
    path = _pid_file(root, name)
    if not path.is_file():
        return None
    try:
        child = Child(**json.loads(path.read_text(encoding="utf-8")))
        proc = psutil.Process(child.pid)
        ticks = start_ticks(child.pid) if child.ticks else 0
        same = ticks == child.ticks if ticks else abs(proc.create_time() - child.started) <= 1
        if not same or proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (ValueError, TypeError, psutil.Error):
        return None
    return child


def stop(root: Path, name: str, timeout: float = 10.0) -> bool:
    """Stop the recorded child (TERM, then KILL) and forget it. True when something was stopped."""
    child = recorded(root, name)
    _pid_file(root, name).unlink(missing_ok=True)
    if child is None:
        return False
    try:
        os.killpg(child.pid, signal.SIGTERM)
        if not wait_until(lambda: exited_early(child), timeout):
            os.killpg(child.pid, signal.SIGKILL)
            wait_until(lambda: exited_early(child), 5)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    handle = _HANDLES.get(child.pid)
    if handle is not None:
        handle.poll()  # reap our own child, so it does not linger as a zombie
    return True


def exited_early(child: Child) -> bool:
    """Gone, or a zombie: a child of another process (the one that started it) stays one until reaped."""
    try:
        proc = psutil.Process(child.pid)
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])
