"""The action catalogue: every id a page's step may name, with its typed, frozen parameter model
(``…Params``: what a step is given, never what carries it out).

The models say what each knob is, its type and its hard range; the page gives the values. The engine's
implementation of each action (``concertops.engine.dispatch``) is keyed by the same model,
and a unit test checks that each id has exactly one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from concertops.contract import settings as setting_specs
from concertops.model.errors import UsageError
from concertops.model.params import ParamError, limit, optional, param

_FROZEN = {"frozen": True, "kw_only": True}


class _SettingError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _check_setting(field: str, name: str, value: Any) -> None:
    if name not in setting_specs.BY_NAME:
        raise _SettingError(field, f"unknown setting {name!r} (known: {', '.join(setting_specs.BY_NAME)})")
    try:
        setting_specs.BY_NAME[name].parse(value)
    except UsageError as exc:
        raise _SettingError(field, str(exc)) from None


@dataclass(**_FROZEN)
class SetSettingsParams:
    """Write fixed values of the service's runtime settings (one new settings version)."""

    settings: dict[str, Any] = param("setting name → value")

    def __post_init__(self) -> None:
        if not self.settings:
            raise _SettingError("params.settings", "names no setting")
        for name, value in self.settings.items():
            _check_setting(f"params.settings.{name}", name, value)


@dataclass(**_FROZEN)
class SetSettingParams:
    """Write one runtime setting whose value an operator may tune, within the step's limits."""

    setting: str = param("the setting's name")
    value: int = param("the value to set")
    min: int | None = optional("the lowest value an operator may set", role="limit")
    max: int | None = optional("the highest value an operator may set", role="limit")
    max_share_of_max_connections: float | None = optional(
        "a pool size's total over the instances may use at most this share of max_connections", role="limit"
    )

    def __post_init__(self) -> None:
        _check_setting("params.setting", self.setting, self.value)


@dataclass(**_FROZEN)
class MarkSoldOutParams:
    max_schedules: int = limit("Most schedules to mark sold out in one run", option="--max-schedules", min=1)


@dataclass(**_FROZEN)
class ActivateWaitingParams:
    max_tokens: int = limit("Most WAITING tokens to activate now", option="--max-activate", min=1)


@dataclass(**_FROZEN)
class ForceExpireParams:
    batch: int = limit("Most holds in one committed batch", option="--batch-size", min=1, max=10_000)
    batch_ms: int = limit(
        "Size batches toward this many ms each, up to --batch-size (0: every batch --batch-size)",
        option="--batch-ms",
        min=0,
        max=1_000,
    )
    max_rows: int = limit("Most holds to expire in one run", option="--max-rows", min=1)
    sleep: float = limit("Seconds between batches", option="--sleep", min=0, max=60)


@dataclass(**_FROZEN)
class ReplayDlqParams:
    max_messages: int = limit("Most DLQ messages to replay", option="--max-messages", min=1)
    max_replays: int = limit(
        "Quarantine a DLQ message replayed this often already", option="--max-replays", min=1
    )
    max_rate: int = limit("DLQ messages per second at most", option="--replay-rate", min=1)


@dataclass(**_FROZEN)
class KillIdleParams:
    min_idle_s: int = limit("Kill only connections asleep longer (seconds)", option="--idle-seconds", min=1)
    max_kills: int = limit("Most connections to kill", option="--max-kills", min=1, max=1000)
    app_user: str | None = optional(
        "The service's database user (default: the profile's database user)", option="--app-user"
    )


@dataclass(**_FROZEN)
class RepublishPaymentsParams:
    # B-1 and B-4 both re-publish: a run of either takes this lock too, so the two never publish at once.
    shared_lock: ClassVar[str] = "republish-payments"
    window: Literal["last_hour", "dropped"] = param(
        "Default window: the last hour, or where Prometheus saw events dropped"
    )
    max_events: int = limit("Most events to rebuild in one run", option="--max-events", min=1)
    batch: int = limit("Events per publish batch", option="--batch", min=1, max=10_000)
    max_rate: int = limit("Events per second at most", option="--max-rate", min=1)
    since: datetime | None = optional("Window start, UTC (default: the page's window)", option="--since")
    until: datetime | None = optional("Window end, UTC (default: now)", option="--until")
    create_topic: bool | None = optional(
        "Create the topic when the broker has lost it (partitions: the map's kafka.partitions)",
        option="--create-topic",
    )

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ParamError("since", f"--since {self.since} is not before --until {self.until}: swap them")


@dataclass(**_FROZEN)
class ListDoublePaymentsParams:
    max_rows: int = limit("Most reservations to list", min=1)


def shared_locks(configs: Any) -> tuple[str, ...]:
    """The shared-remediation locks that steps with these parameter models take besides their runbook's."""
    return tuple(sorted({name for c in configs if (name := getattr(type(c), "shared_lock", ""))}))


CATALOGUE: dict[str, type[Any]] = {
    "set_settings": SetSettingsParams,
    "set_setting": SetSettingParams,
    "mark_sold_out": MarkSoldOutParams,
    "activate_waiting": ActivateWaitingParams,
    "force_expire": ForceExpireParams,
    "replay_dlq": ReplayDlqParams,
    "kill_idle": KillIdleParams,
    "republish_payments": RepublishPaymentsParams,
    "list_double_payments": ListDoublePaymentsParams,
}
