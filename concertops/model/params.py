"""Typed, frozen parameter models of remediation actions, and their validation.

An action's model is a frozen, keyword-only dataclass whose fields are *knobs*: a ``param`` says what the
step does, a ``limit`` bounds it (max rows, batch size, rate). The runbook page gives every required
knob its value, and that value is the only default there is: the runbook command's option shows it and
overrides it. Everything is checked when the page is loaded, and again for an operator's override, so a
typo or a value out of range is an error naming the file, the step and the field, never a silent default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

Role = Literal["param", "limit"]
M = TypeVar("M")


class ParamError(ValueError):
    """A knob's value is missing, unknown, of the wrong type or out of range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


@dataclass(frozen=True)
class Knob:
    role: Role
    help: str
    option: str = ""  # the runbook command's option; "" = the page's value cannot be overridden
    min: float | None = None
    max: float | None = None
    required: bool = True  # the page must give it; optional knobs default to None (decided at run time)

    def bounds(self) -> str:
        return bounds_text(self.min, self.max)


def bounds_text(low: float | None, high: float | None) -> str:
    """``1…10000``, ``≥ 1``, ``≤ 200`` or ""."""
    if low is not None and high is not None:
        return f"{_plain(low)}…{_plain(high)}"
    if low is not None:
        return f"≥ {_plain(low)}"
    if high is not None:
        return f"≤ {_plain(high)}"
    return ""


def param(help: str, *, option: str = "", min: float | None = None, max: float | None = None) -> Any:
    return dataclasses.field(metadata={"knob": Knob("param", help, option, min, max)})


def limit(help: str, *, option: str = "", min: float | None = None, max: float | None = None) -> Any:
    return dataclasses.field(metadata={"knob": Knob("limit", help, option, min, max)})


def optional(help: str, *, option: str = "", role: Role = "param") -> Any:
    """A knob the page may leave open: None until given (a window start, a limit only some steps need)."""
    return dataclasses.field(default=None, metadata={"knob": Knob(role, help, option, required=False)})


_KNOBS: dict[type[Any], dict[str, tuple[Knob, Any]]] = {}


def knobs(model: type[Any]) -> dict[str, tuple[Knob, Any]]:
    """Each field's knob and its type, in declaration order (resolving the hints costs: once a model)."""
    if model not in _KNOBS:
        hints = typing.get_type_hints(model)
        _KNOBS[model] = {f.name: (f.metadata["knob"], hints[f.name]) for f in dataclasses.fields(model)}
    return _KNOBS[model]


def build(model: type[M], params: Mapping[str, Any], limits: Mapping[str, Any]) -> M:
    """The model from a page's ``params`` and ``limits``; ParamError names the first bad field."""
    spec = knobs(model)
    values: dict[str, Any] = {}
    for role, given in (("param", params), ("limit", limits)):
        for name, value in given.items():
            knob = spec.get(name, (None, None))[0]
            if knob is None or knob.role != role:
                known = ", ".join(n for n, (k, _t) in spec.items() if k.role == role) or "none"
                raise ParamError(f"{role}s.{name}", f"unknown {role} (known: {known})")
            values[name] = coerce(f"{role}s.{name}", value, spec[name][1], knob)
    for name, (knob, _kind) in spec.items():
        if knob.required and name not in values:
            raise ParamError(f"{knob.role}s.{name}", "missing (the page gives every required value)")
    try:
        return model(**values)
    except ValueError as exc:  # the model's own cross-field check (__post_init__)
        raise ParamError(getattr(exc, "field", "params"), str(exc)) from None


def override(config: M, changes: Mapping[str, Any]) -> M:
    """The same model with an operator's values, each checked as the page's are."""
    spec = knobs(type(config))
    checked = {}
    for name, value in changes.items():
        if name not in spec:
            raise ParamError(name, f"{type(config).__name__} has no such knob")
        knob, kind = spec[name]
        checked[name] = coerce(f"{knob.role}s.{name}", value, kind, knob)
    return dataclasses.replace(config, **checked)  # type: ignore[type-var]


def split(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, limits)`` of a model, as the page writes them (None values left out)."""
    params: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for name, (knob, _kind) in knobs(type(config)).items():
        value = getattr(config, name)
        if value is not None:
            (params if knob.role == "param" else limits)[name] = value
    return params, limits


def coerce(field: str, value: Any, kind: Any, knob: Knob) -> Any:
    """``value`` as ``kind``, within the knob's range; YAML gives ints where floats are meant."""
    if value is None:
        if knob.required:
            raise ParamError(field, "must have a value")
        return None
    allowed = value_types(kind)
    if typing.get_origin(kind) is Literal:
        if value not in typing.get_args(kind):
            raise ParamError(field, f"{value!r} is not one of {', '.join(map(str, typing.get_args(kind)))}")
        return value
    if int in allowed and isinstance(value, int) and not isinstance(value, bool):
        pass
    elif float in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        value = float(value)
    elif (bool in allowed and isinstance(value, bool)) or (str in allowed and isinstance(value, str)):
        pass
    elif datetime in allowed and isinstance(value, datetime | str):
        try:
            value = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        except ValueError:
            raise ParamError(field, f"{value!r} is not a date and time (YYYY-MM-DDTHH:MM:SS)") from None
    elif dict in allowed and isinstance(value, Mapping):
        value = dict(value)
    else:
        names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
        raise ParamError(field, f"must be {names}, not {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if knob.min is not None and value < knob.min:
            raise ParamError(field, f"{value} is below {_plain(knob.min)}")
        if knob.max is not None and value > knob.max:
            raise ParamError(field, f"{value} is above {_plain(knob.max)}")
    return value


def value_types(kind: Any) -> tuple[Any, ...]:
    """The concrete types a hint admits: ``float | None`` → (float,), ``dict[str, Any]`` → (dict,)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return tuple(k for arg in typing.get_args(kind) for k in value_types(arg) if k is not type(None))
    return (origin or kind,)


def _plain(number: float) -> str:
    return f"{number:g}"
