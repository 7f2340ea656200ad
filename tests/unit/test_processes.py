"""The devstack's process bookkeeping, on real child processes."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from concertops.devstack import processes


def test_spawn_records_and_stop_kills(tmp_path: Path) -> None:
    child = processes.spawn(tmp_path, "sleeper", ["sleep", "60"])
    assert processes.recorded(tmp_path, "sleeper") == child
    assert processes.stop(tmp_path, "sleeper") is True
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    assert processes.recorded(tmp_path, "sleeper") is None
    assert processes.stop(tmp_path, "sleeper") is False


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    child = processes.spawn(tmp_path, "sleeper", ["sleep", "60"])
    try:
        # Pretend the recorded process started at another time: the PID now belongs to someone else.
        pid_file = tmp_path / "pids" / "sleeper.json"
        data = json.loads(pid_file.read_text())
        data["started"] -= 1000
        data["ticks"] -= 100_000
        pid_file.write_text(json.dumps(data))
        assert processes.recorded(tmp_path, "sleeper") is None
        assert processes.stop(tmp_path, "sleeper") is False
        assert psutil.Process(child.pid).is_running()
    finally:
        psutil.Process(child.pid).kill()


def test_a_wall_clock_step_does_not_make_our_child_a_stranger(tmp_path: Path) -> None:
    """The clock stepped by an hour since the child started (a resumed virtual machine): still ours."""
    child = processes.spawn(tmp_path, "sleeper", ["sleep", "60"])
    try:
        assert child.ticks > 0
        pid_file = tmp_path / "pids" / "sleeper.json"
        data = json.loads(pid_file.read_text())
        data["started"] -= 3600
        pid_file.write_text(json.dumps(data))
        assert processes.recorded(tmp_path, "sleeper") is not None
        assert processes.stop(tmp_path, "sleeper") is True
    finally:
        if psutil.pid_exists(child.pid):
            psutil.Process(child.pid).kill()


def test_output_goes_to_the_log(tmp_path: Path) -> None:
    processes.spawn(tmp_path, "echo", ["sh", "-c", "echo hello from child"])
    log = processes.log_file(tmp_path, "echo")
    assert processes.wait_until(lambda: "hello from child" in processes.tail(log), timeout=5)
