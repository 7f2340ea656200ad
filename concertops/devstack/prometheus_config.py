"""The devstack's Prometheus: a generated config, scraping every 1 s, with backend instances discovered
through files (``targets/*.json``) so instances can come and go without a reload."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from concertops.devstack.paths import targets_dir

BOOKING_JOB = "booking"


def alerts_dir() -> Path | None:
    """Rule files to load: ``$CONCERTOPS_ALERTS_DIR``, else the source tree's ``alerts/``."""
    explicit = os.environ.get("CONCERTOPS_ALERTS_DIR")
    candidate = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "alerts"
    return candidate if candidate.is_dir() else None


def write_config(root: Path, host: str, port: int, mysqld_port: int, redis_port: int) -> Path:
    targets = targets_dir(root)
    targets.mkdir(parents=True, exist_ok=True)
    rules = alerts_dir()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules / "*.yml")] if rules else [],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{host}:{port}"]}]},
            {"job_name": "mysqld", "static_configs": [{"targets": [f"{host}:{mysqld_port}"]}]},
            {"job_name": "redis", "static_configs": [{"targets": [f"{host}:{redis_port}"]}]},
            {
                "job_name": BOOKING_JOB,
                "file_sd_configs": [{"files": [str(targets / "*.json")], "refresh_interval": "1s"}],
            },
        ],
    }
    path = root / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def register_target(root: Path, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
    """Announce a backend instance (``host:port``) to Prometheus; written atomically."""
    folder = targets_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": labels or {}}]), encoding="utf-8")
    tmp.replace(path)
    return path


def unregister_target(root: Path, name: str) -> None:
    (targets_dir(root) / f"{name}.json").unlink(missing_ok=True)


def registered_targets(root: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(targets_dir(root).glob("*.json")):
        try:
            for group in json.loads(path.read_text(encoding="utf-8")):
                out.extend(group.get("targets", []))
        except (OSError, ValueError):
            continue
    return out
