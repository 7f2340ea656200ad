"""Runtime settings of the booking service: names (fixed), types, ranges, and the two presets.

Every backend instance reads them live from the database; ``concertops settings`` writes them. ``legacy``
is the incident manual's "current" code, ``recommended`` its root fixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from concertops.model.errors import UsageError

Value = int | bool | str


@dataclass(frozen=True)
class SettingSpec:
    name: str
    kind: type  # int, bool or str
    default: Value  # the recommended value
    legacy: Value
    help: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()

    def parse(self, raw: Any) -> Value:
        """Turn a stored or typed value into this setting's type, or raise UsageError naming the fix."""
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "on", "yes"}:
                return True
            if text in {"0", "false", "off", "no"}:
                return False
            raise UsageError(f"setting {self.name} takes on/off, not '{raw}'", f"e.g. {self.name}=on")
        if self.kind is int:
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise UsageError(f"setting {self.name} takes a whole number, not '{raw}'") from None
            if self.minimum is not None and value < self.minimum:
                raise UsageError(f"setting {self.name}={value} is below its minimum {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise UsageError(f"setting {self.name}={value} is above its maximum {self.maximum}")
            return value
        text = str(raw).strip()
        if self.choices and text not in self.choices:
            raise UsageError(f"setting {self.name} takes one of {', '.join(self.choices)}, not '{raw}'")
        return text

    def render(self, value: Value) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)

    def as_number(self, value: Value) -> float | None:
        """The value as a metric sample; text settings are exported as info labels instead."""
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, int):
            return float(value)
        return None


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("max_active_tokens", int, 50, 50, "queue tokens ACTIVE at once", 1, 10_000),
    SettingSpec("lock_ttl_ms", int, 3000, 5000, "seat lock time-to-live", 100, 60_000),
    SettingSpec("lock_wait_ms", int, 1500, 3000, "longest wait for a seat lock", 0, 60_000),
    SettingSpec("lock_retry_ms", int, 30, 50, "pause between seat lock attempts", 1, 5_000),
    SettingSpec("db_pool_size", int, 30, 10, "database connections per instance", 1, 1_000),
    SettingSpec("queue_activation_interval_s", int, 30, 5, "queue activation polling period", 1, 3_600),
    SettingSpec("event_activation", bool, True, False, "activate tokens at once on payment / expiry"),
    SettingSpec("expiry_sweep_interval_s", int, 10, 0, "overdue-hold sweep period (0 = off)", 0, 3_600),
    SettingSpec(
        "publish_mode", str, "outbox", "direct", "how events leave a payment", choices=("outbox", "direct")
    ),
    SettingSpec(
        "producer_disconnected",
        str,
        "buffer",
        "skip",
        "what a disconnected producer does",
        choices=("buffer", "skip"),
    ),
    SettingSpec(
        "expiry_consumer_mode",
        str,
        "reschedule",
        "blocking",
        "how expiry messages are handled",
        choices=("reschedule", "blocking"),
    ),
    SettingSpec("rate_limit_rps", int, 0, 0, "requests/s per instance (0 = unlimited)", 0, 1_000_000),
    # Beyond the manual's knobs: shorter holds and timeouts let tests and game days run in seconds.
    SettingSpec("hold_ttl_s", int, 300, 300, "how long a seat stays HELD before payment", 1, 86_400),
    SettingSpec("active_token_ttl_s", int, 300, 300, "how long an ACTIVE queue token lives", 1, 86_400),
    SettingSpec("kafka_send_timeout_ms", int, 5000, 25000, "direct publish: give up after", 100, 300_000),
    # Fault injection: latency added to the seat query inside the lock, as a loaded production database
    # shows it; 0 in both presets, raised by `simulate incident A-1`.
    SettingSpec("db_query_delay_ms", int, 0, 0, "fault injection: extra seat-query latency", 0, 10_000),
    SettingSpec(
        "producer_disconnect_after_s", int, 30, 30, "broker unreachable this long = disconnected", 1, 3_600
    ),
)
BY_NAME: dict[str, SettingSpec] = {spec.name: spec for spec in SPECS}

PRESETS: dict[str, dict[str, Value]] = {
    "recommended": {spec.name: spec.default for spec in SPECS},
    "legacy": {spec.name: spec.legacy for spec in SPECS},
}


def spec(name: str) -> SettingSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown setting '{name}'", f"known settings: {', '.join(BY_NAME)}") from None


def resolve(stored: Mapping[str, str]) -> dict[str, Value]:
    """Stored text values over the recommended defaults; a bad stored value falls back to its default."""
    values: dict[str, Value] = dict(PRESETS["recommended"])
    for name, raw in stored.items():
        if name in BY_NAME:
            try:
                values[name] = BY_NAME[name].parse(raw)
            except UsageError:
                continue
    return values
