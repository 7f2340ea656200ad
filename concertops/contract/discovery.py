"""Where the devstack keeps its data, logs and PID files, and the backend instances it announced.

The instances announce themselves as Prometheus file-based discovery targets; the built-in local profile
reads the same files to scrape them directly when Prometheus is down. Both sides meet here."""

from __future__ import annotations

import json
import os
from pathlib import Path


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
