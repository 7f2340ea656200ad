"""The alert rules as the tests read them: every rule of every file in alerts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]


def load_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((ROOT / "alerts").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
