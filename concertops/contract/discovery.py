"""Where the devstack keeps its data, logs and PID files, and the backend instances it announced.

The instances announce themselves as Prometheus file-based discovery targets; the built-in local profile
reads the same files to scrape them directly when Prometheus is down. Both sides meet here."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from concertops.model.errors import ConfigError

# The devstack's ports, away from the services' usual ones (except MariaDB's and Redis's, which it reuses
# when they already answer). ``CONCERTOPS_DEVSTACK_PORT_OFFSET`` moves every one of them, so two devstacks
# run side by side on one machine (two checkouts, or parallel test workers), each with its own servers.
BASE_PORTS = {
    "mariadb": 3306,
    "redis": 6379,
    "kafka": 19092,
    "mysqld-exporter": 19104,
    "redis-exporter": 19121,
    "prometheus": 19090,
}
OFFSET_VARIABLE = "CONCERTOPS_DEVSTACK_PORT_OFFSET"
MAX_OFFSET = 30_000


def port_offset(env: Mapping[str, str] | None = None) -> int:
    """``$CONCERTOPS_DEVSTACK_PORT_OFFSET``, 0 when unset; a value that is not a port offset is an error."""
    raw = (os.environ if env is None else env).get(OFFSET_VARIABLE, "").strip() or "0"
    try:
        offset = int(raw)
    except ValueError:
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        raise ConfigError(
            f"{OFFSET_VARIABLE}={raw!r} is not a port offset", f"use a whole number from 0 to {MAX_OFFSET}"
        )
    return offset


def devstack_port(component: str, env: Mapping[str, str] | None = None) -> int:
    return BASE_PORTS[component] + port_offset(env)


def state_dir() -> Path:
    """``$CONCERTOPS_STATE_DIR``, else ``$XDG_STATE_HOME/concertops/devstack``."""
    explicit = os.environ.get("CONCERTOPS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "concertops" / "devstack"


# The folders Prometheus discovers targets in: backend instances, and concertops exporters (another job:
# an exporter is not a backend to scrape directly).
BACKENDS, EXPORTERS = "targets", "exporter-targets"


def targets_dir(root: Path | None = None, kind: str = BACKENDS) -> Path:
    """File-based service discovery: one JSON file per target, read by Prometheus."""
    return (root or state_dir()) / kind


def register_target(
    root: Path, name: str, address: str, labels: dict[str, str] | None = None, kind: str = BACKENDS
) -> Path:
    """Announce a target (``host:port``) to Prometheus; written atomically."""
    folder = targets_dir(root, kind)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": labels or {}}]), encoding="utf-8")
    tmp.replace(path)
    return path


def unregister_target(root: Path, name: str, kind: str = BACKENDS) -> None:
    (targets_dir(root, kind) / f"{name}.json").unlink(missing_ok=True)


def registered_targets(root: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(targets_dir(root).glob("*.json")):
        try:
            for group in json.loads(path.read_text(encoding="utf-8")):
                out.extend(group.get("targets", []))
        except (OSError, ValueError):
            continue
    return out
