"""The runbook page schema: YAML front matter is the machine-readable part, the rest is for people.

A malformed page fails loudly at load, naming the file, the step and the field: an unknown action id,
an unknown limit, or a limit of the wrong type or out of range is never a silent "not automated".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from concertops.model.params import ParamError, build, knobs
from concertops.model.signals import RunbookPageError, Signal, parse_signal

# Action id → its typed parameter model (the catalogue lives with the runbooks, above this layer).
Catalogue = Mapping[str, type[Any]]


@dataclass(frozen=True)
class StepSpec:
    id: str
    title: str
    action: str  # an id of the action catalogue, e.g. force_expire
    when: tuple[str, ...]
    config: Any  # the action's frozen parameter model, validated at load
    expect: str = ""
    optional: bool = False  # planned only when the operator asks for it (gives one of its options)
    options: Mapping[str, str] = field(default_factory=dict)  # knob → the runbook command's option


@dataclass(frozen=True)
class Page:
    id: str
    title: str
    summary: str  # the runbook command's one-line help
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


def parse(text: str, path: Path, catalogue: Catalogue) -> Page:
    import yaml

    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise RunbookPageError(f"{path}: no YAML front matter (a page starts with a '---' block)")
    head, body = text[4:].split("\n---\n", 1)
    try:
        meta = yaml.load(head, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
        _step(raw, f"{path}: remediation[{i}]", set(names), catalogue)
        for i, raw in enumerate(meta.get("remediation") or [])
    )
    _options_unique(steps, path)
    return Page(
        id=str(meta["id"]),
        title=str(meta["title"]),
        summary=str(meta.get("summary") or meta["title"]),
        module=str(meta["module"]),
        signals=signals,
        remediation=steps,
        body=body.strip(),
        path=path,
    )


def _step(raw: Any, where: str, signals: set[str], catalogue: Catalogue) -> StepSpec:
    if not isinstance(raw, dict):
        raise RunbookPageError(f"{where}: a remediation step must be a mapping")
    for key in ("id", "title", "action", "when"):
        if not raw.get(key):
            raise RunbookPageError(f"{where}: field {key!r} is missing")
    where = f"{where} ({raw['id']})"
    unknown = [w for w in raw["when"] if w not in signals]
    if unknown:
        raise RunbookPageError(f"{where}: field 'when' names unknown signals {unknown}")
    action = str(raw["action"])
    model = catalogue.get(action)
    if model is None:
        raise RunbookPageError(
            f"{where}: field 'action': unknown action id {action!r}", f"use one of {', '.join(catalogue)}"
        )
    for key in ("params", "limits", "options"):
        if not isinstance(raw.get(key) or {}, dict):
            raise RunbookPageError(f"{where}: field {key!r} must be a mapping")
    try:
        config = build(model, raw.get("params") or {}, raw.get("limits") or {})
    except ParamError as exc:
        raise RunbookPageError(f"{where}: {exc}") from None
    spec = knobs(model)
    options = {name: knob.option for name, (knob, _kind) in spec.items() if knob.option}
    for name, option in (raw.get("options") or {}).items():
        if name not in spec:
            raise RunbookPageError(f"{where}: field 'options.{name}': {action} has no knob {name!r}")
        if not isinstance(option, str) or not option.startswith("--"):
            raise RunbookPageError(f"{where}: field 'options.{name}': {option!r} must look like --name")
        options[name] = option
    return StepSpec(
        id=str(raw["id"]),
        title=str(raw["title"]),
        action=action,
        when=tuple(raw["when"]),
        config=config,
        expect=str(raw.get("expect", "")),
        optional=bool(raw.get("optional", False)),
        options=options,
    )


def _options_unique(steps: tuple[StepSpec, ...], path: Path) -> None:
    seen: dict[str, str] = {}
    for step in steps:
        for option in step.options.values():
            if option in seen:
                raise RunbookPageError(
                    f"{path}: remediation ({step.id}): option {option} is also step {seen[option]}'s",
                    "give one of them another name under 'options'",
                )
            seen[option] = step.id
