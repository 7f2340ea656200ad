"""The devstack's Prometheus: a generated config, scraping every 1 s, with backend instances discovered
through files (``targets/*.json``) so instances can come and go without a reload."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml

from concertops.contract.discovery import EXPORTERS, targets_dir

BOOKING_JOB = "booking"
EXPORTER_JOB = "concertops-exporter"


def alerts_dir() -> Path | None:
    """Rule files to load: ``$CONCERTOPS_ALERTS_DIR``, else the rules shipped in the package."""
    explicit = os.environ.get("CONCERTOPS_ALERTS_DIR")
    candidate = Path(explicit) if explicit else Path(str(resources.files("concertops") / "alerts"))
    return candidate if candidate.is_dir() else None


def write_config(root: Path, host: str, port: int, mysqld_port: int, redis_port: int) -> Path:
    targets = targets_dir(root)
    targets.mkdir(parents=True, exist_ok=True)
    exporters = targets_dir(root, EXPORTERS)
    exporters.mkdir(parents=True, exist_ok=True)
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
            {
                # `concertops exporter --register-devstack`: the stores' measurements, every 5 s.
                "job_name": EXPORTER_JOB,
                "scrape_interval": "5s",
                "scrape_timeout": "2s",
                "file_sd_configs": [{"files": [str(exporters / "*.json")], "refresh_interval": "1s"}],
            },
        ],
    }
    path = root / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
