"""Runbook pages (``runbooks/A-1.md`` …): YAML front matter is the machine-readable part, the rest is for
people. A malformed page fails loudly at load, naming the file and the field."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concertops.engine.signals import RunbookPageError, Signal, parse_signal

RUNBOOK_IDS = ("A-1", "A-2", "A-3", "B-1", "B-2", "B-3", "B-4")


@dataclass(frozen=True)
class StepSpec:
    id: str
    title: str
    action: str
    when: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    expect: str = ""
    optional: bool = False  # planned only when the operator asks for it (e.g. a1 --rate-limit-rps)


@dataclass(frozen=True)
class Page:
    id: str
    title: str
    module: str
    signals: tuple[Signal, ...]
    remediation: tuple[StepSpec, ...]
    body: str
    path: Path

    def signal(self, name: str) -> Signal:
        return next(s for s in self.signals if s.name == name)

    @property
    def main_signal(self) -> Signal:
        return next((s for s in self.signals if s.main), self.signals[0])


def pages_dir() -> Path:
    """``$CONCERTOPS_RUNBOOKS_DIR``, else the ``runbooks/`` folder beside the package."""
    explicit = os.environ.get("CONCERTOPS_RUNBOOKS_DIR")
    return Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "runbooks"


def normalise_id(text: str) -> str:
    """``a1``, ``A1``, ``a-1`` → ``A-1``."""
    compact = text.strip().upper().replace("-", "").replace("_", "")
    candidate = f"{compact[:1]}-{compact[1:]}"
    if candidate not in RUNBOOK_IDS:
        raise ValueError(text)
    return candidate


def load(runbook_id: str, folder: Path | None = None) -> Page:
    path = (folder or pages_dir()) / f"{runbook_id}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookPageError(
            f"runbook page {path} unreadable: {exc.strerror}", "set CONCERTOPS_RUNBOOKS_DIR"
        ) from None
    return parse(text, path)


def parse(text: str, path: Path) -> Page:
    import yaml

    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise RunbookPageError(f"{path}: no YAML front matter (a page starts with a '---' block)")
    head, body = text[4:].split("\n---\n", 1)
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise RunbookPageError(f"{path}: front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise RunbookPageError(f"{path}: front matter must be a mapping")
    for key in ("id", "title", "module", "signals"):
        if not meta.get(key):
            raise RunbookPageError(f"{path}: field {key!r} is missing")
    if meta["id"] != path.stem:
        raise RunbookPageError(f"{path}: field 'id' is {meta['id']!r}, the file name says {path.stem!r}")
    if not isinstance(meta["signals"], list):
        raise RunbookPageError(f"{path}: field 'signals' must be a list")
    signals = tuple(parse_signal(raw, f"{path}: signals[{i}]") for i, raw in enumerate(meta["signals"]))
    names = [s.name for s in signals]
    if len(set(names)) != len(names):
        raise RunbookPageError(f"{path}: signal names repeat: {names}")
    steps = tuple(
        _step(raw, f"{path}: remediation[{i}]", set(names))
        for i, raw in enumerate(meta.get("remediation") or [])
    )
    return Page(str(meta["id"]), str(meta["title"]), str(meta["module"]), signals, steps, body.strip(), path)


def _step(raw: Any, where: str, signals: set[str]) -> StepSpec:
    if not isinstance(raw, dict):
        raise RunbookPageError(f"{where}: a remediation step must be a mapping")
    for key in ("id", "title", "action", "when"):
        if not raw.get(key):
            raise RunbookPageError(f"{where}: field {key!r} is missing")
    unknown = [w for w in raw["when"] if w not in signals]
    if unknown:
        raise RunbookPageError(f"{where}: field 'when' names unknown signals {unknown}")
    return StepSpec(
        id=str(raw["id"]),
        title=str(raw["title"]),
        action=str(raw["action"]),
        when=tuple(raw["when"]),
        params=dict(raw.get("params") or {}),
        limits=dict(raw.get("limits") or {}),
        expect=str(raw.get("expect", "")),
        optional=bool(raw.get("optional", False)),
    )
