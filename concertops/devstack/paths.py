"""Where the devstack keeps its data, logs, PID files and Prometheus targets."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """``$CONCERTOPS_STATE_DIR``, else ``$XDG_STATE_HOME/concertops/devstack``."""
    explicit = os.environ.get("CONCERTOPS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "concertops" / "devstack"


def targets_dir(root: Path | None = None) -> Path:
    """File-based service discovery: one JSON file per backend instance, read by Prometheus."""
    return (root or state_dir()) / "targets"
