"""Which implementation a step gets is decided by the map's own fields, never by the map's name: a copy of
the twin's map with a renamed column keeps every action, and what a map lacks is said in its words."""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from concertops.contract import capabilities, service_map
from concertops.engine import dispatch
from concertops.engine.change_settings import ChangeSettings
from concertops.engine.force_expire import ForceExpire
from concertops.engine.not_available import NotOnThisService
from concertops.runbooks import catalogue


def _copy_of_reference(tmp_path: Path, edit: object) -> service_map.ServiceMap:
    raw = yaml.safe_load((service_map.maps_dir() / "reference.yml").read_text())
    edit(raw)  # type: ignore[operator]
    raw["name"] = "renamed"
    path = tmp_path / "renamed.yml"
    path.write_text(yaml.safe_dump(raw))
    return service_map.load(str(path))


def test_a_copy_of_the_twins_map_with_a_renamed_column_keeps_every_action(tmp_path: Path) -> None:
    def rename(raw: dict) -> None:  # type: ignore[type-arg]
        raw["tables"]["reservation"]["columns"]["expires_at"] = "hold_until"

    renamed = _copy_of_reference(tmp_path, rename)
    reference = service_map.load("reference")
    assert capabilities.of(renamed) == capabilities.of(reference)
    mine, theirs = dispatch.implementations(renamed), dispatch.implementations(reference)
    assert mine == theirs
    assert mine[catalogue.ForceExpireParams] is ForceExpire
    assert mine[catalogue.SetSettingsParams] is ChangeSettings


def test_what_a_map_lacks_is_said_with_its_own_field(tmp_path: Path) -> None:
    def strip(raw: dict) -> None:  # type: ignore[type-arg]
        del raw["tables"]["schedule"]
        del raw["kafka"]["topics"]["expiration_dlq"]

    lean = _copy_of_reference(tmp_path, strip)
    table = dispatch.implementations(lean)
    sold_out = table[catalogue.MarkSoldOutParams]
    assert getattr(sold_out, "func", None) is NotOnThisService
    assert "tables.schedule with a sold_out column" in sold_out.keywords["why"]  # type: ignore[attr-defined]
    assert "kafka.topics.expiration_dlq" in table[catalogue.ReplayDlqParams].keywords["why"]  # type: ignore[attr-defined]


def test_the_production_map_lacks_what_its_fields_say() -> None:
    step10 = service_map.load("step10")
    can = capabilities.of(step10)
    assert not (can.outbox or can.seat_status or can.sold_out_mark or can.dlq or can.runtime_settings)
    assert can.one_payment_per_reservation and can.queue_store == "redis"
    double = dispatch.implementations(step10)[catalogue.ListDoublePaymentsParams]
    assert "tables.payment.unique names reservation" in double.keywords["why"]  # type: ignore[attr-defined]


def test_capabilities_are_plain_data() -> None:
    assert msgspec.to_builtins(capabilities.of(service_map.load("reference")))["seat_status"] is True
