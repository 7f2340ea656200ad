"""The service map: built-ins load, and a bad map is one error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from concertops.config import load_profile
from concertops.contract import service_map
from concertops.model.errors import ConfigError


def test_the_built_in_maps_load_and_differ_where_production_does() -> None:
    reference, step10 = service_map.load("reference"), service_map.load("step10")
    assert service_map.load(None) is reference  # the default
    assert reference.tables["reservation"].column("expires_at") == "held_expires_at"
    assert step10.tables["reservation"].column("expires_at") == "expiresAt"
    assert step10.tables["reservation"].key_type == "uuid"
    assert step10.tables["seat"].column("status") is None  # production has no seat status
    assert step10.queue.store == "redis" and step10.queue.waiting is not None
    assert step10.queue.waiting.key == "queue:waiting" and step10.queue.waiting.type == "zset"
    assert (
        step10.group("expiry") is not None and step10.group("expiry").group == "reservation-expiration-group"
    )
    assert not step10.metrics and not step10.acts.runtime_settings and not step10.acts.outbox
    assert step10.deploy_constants["max_active_tokens"].value == 50
    assert reference.metrics and reference.acts.outbox


def _write(tmp_path: Path, change: dict, drop: tuple[str, ...] = ()) -> Path:
    raw = yaml.safe_load((service_map.maps_dir() / "step10.yml").read_text())
    for key in drop:
        raw.pop(key)
    raw.update(change)
    path = tmp_path / "mine.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "drop", "field"),
    [
        ({"zone": "Asia/Seol"}, (), "zone"),
        ({"colour": "blue"}, (), "colour"),
        ({}, ("tables",), "tables"),
        (
            {"tables": {"reservation": {"table": "reservation", "key": "id; DROP", "key_type": "uuid"}}},
            (),
            "key",
        ),
        ({"tables": {"reservation": {"table": "r", "key": "k", "key_type": "text"}}}, (), "key_type"),
        ({"queue": {"store": "redis"}}, (), "queue"),
        (
            {"kafka": {"envelope": "flat", "topics": {}, "groups": {"x": {"group": "g", "topic": "nope"}}}},
            (),
            "nope",
        ),
    ],
    ids=[
        "zone",
        "unknown-field",
        "missing-tables",
        "bad-identifier",
        "key-type",
        "queue-keys",
        "group-topic",
    ],
)
def test_a_bad_map_names_the_file_and_the_field(
    tmp_path: Path, change: dict, drop: tuple, field: str
) -> None:
    path = _write(tmp_path, change, drop)
    with pytest.raises(ConfigError) as caught:
        service_map.load(str(path))
    message = caught.value.one_line()
    assert str(path) in message and field in message, message
    assert "\n" not in message


def test_a_map_that_does_not_parse_or_does_not_exist(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("tables: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yml is not valid YAML at line"):
        service_map.load(str(broken))
    with pytest.raises(ConfigError, match="neither a built-in"):
        service_map.load(str(tmp_path / "absent.yml"))


def test_the_profile_names_its_map_and_the_environment_overrides_it(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "concertops.yaml"
    config.write_text(
        "profiles:\n  prod:\n    database_url: mysql+pymysql://u@db/x\n    service_map: step10\n"
    )
    assert load_profile(str(config), env={}).service_map == "step10"
    assert load_profile(str(config), env={"CONCERTOPS_SERVICE_MAP": "reference"}).service_map == "reference"
    assert load_profile(env={}).service_map == "reference"


def test_a_status_the_runbooks_or_the_map_name_must_be_in_the_enum() -> None:
    from concertops.sources.map_check import status_gaps

    shape = service_map.load("step10")
    enums = {
        ("reservation", "status"): ["HELD", "CONFIRMED", "CANCELLED", "EXPIRED"],
        ("payment", "status"): ["SUCCESS", "FAILED", "CANCELLED"],
    }
    assert status_gaps(shape, enums) == []
    enums[("reservation", "status")] = ["PENDING", "CONFIRMED", "EXPIRED"]
    enums[("payment", "status")] = ["PAID", "FAILED"]
    assert status_gaps(shape, enums) == [
        "status HELD is not one of reservation.status (PENDING, CONFIRMED, EXPIRED) (seat_taken_by)",
        "status SUCCESS is not one of payment.status (PAID, FAILED) (tables.payment.columns.status)",
    ]
