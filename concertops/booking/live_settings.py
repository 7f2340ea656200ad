"""Runtime settings read live from the database by every instance, within about a second, no restart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

from concertops.booking.metrics import Metrics
from concertops.contract import settings as contract
from concertops.contract.schema import runtime_setting

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.5


class LiveSettings:
    def __init__(
        self, metrics: Metrics, on_change: Callable[[str, contract.Value], None] | None = None
    ) -> None:
        self.metrics = metrics
        self.on_change = on_change
        self.values: dict[str, contract.Value] = dict(contract.PRESETS["recommended"])
        self.version = 0
        self._export()

    def __getitem__(self, name: str) -> contract.Value:
        return self.values[name]

    def int(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int)
        return value

    def refresh(self, engine: sa.Engine) -> None:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(runtime_setting.c.name, runtime_setting.c.value, runtime_setting.c.version)
            ).all()
        version = max((row.version for row in rows), default=0)
        if version == self.version and rows:
            return
        new = contract.resolve({row.name: row.value for row in rows})
        changed = {k: v for k, v in new.items() if self.values.get(k) != v}
        self.values = new
        self.version = version
        for name, value in changed.items():
            log.info("setting %s -> %s (version %s)", name, value, version)
            if self.on_change:
                self.on_change(name, value)
        self._export()

    def _export(self) -> None:
        for name, value in self.values.items():
            number = contract.BY_NAME[name].as_number(value)
            if number is not None:
                self.metrics.setting_value.labels(name).set(number)
            else:
                for choice in contract.BY_NAME[name].choices:
                    self.metrics.setting_info.labels(name, choice).set(1 if choice == value else 0)
        self.metrics.settings_version.set(self.version)

    def run(self, get_engine: Callable[[], sa.Engine], stop: threading.Event) -> None:
        while not stop.wait(POLL_INTERVAL_S):
            try:
                self.refresh(get_engine())
            except sa.exc.SQLAlchemyError as exc:
                log.warning("cannot read settings: %s", type(exc).__name__)
