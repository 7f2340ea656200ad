from __future__ import annotations

import pytest

from concertops.contract import settings as specs
from concertops.model.errors import UsageError


def test_presets_cover_every_setting_and_differ_where_the_manual_says() -> None:
    names = {s.name for s in specs.SPECS}
    assert set(specs.PRESETS["legacy"]) == names == set(specs.PRESETS["recommended"])
    legacy, recommended = specs.PRESETS["legacy"], specs.PRESETS["recommended"]
    assert (legacy["db_pool_size"], recommended["db_pool_size"]) == (10, 30)
    assert (legacy["lock_ttl_ms"], legacy["lock_wait_ms"], legacy["lock_retry_ms"]) == (5000, 3000, 50)
    assert (recommended["lock_ttl_ms"], recommended["lock_wait_ms"], recommended["lock_retry_ms"]) == (
        3000,
        1500,
        30,
    )
    assert (legacy["publish_mode"], recommended["publish_mode"]) == ("direct", "outbox")
    assert (legacy["producer_disconnected"], recommended["producer_disconnected"]) == ("skip", "buffer")
    assert (legacy["expiry_consumer_mode"], recommended["expiry_consumer_mode"]) == ("blocking", "reschedule")
    assert (legacy["queue_activation_interval_s"], legacy["event_activation"]) == (5, False)
    assert (legacy["expiry_sweep_interval_s"], recommended["expiry_sweep_interval_s"]) == (0, 10)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("db_pool_size", " 30 ", 30),
        ("event_activation", "on", True),
        ("event_activation", "0", False),
        ("publish_mode", "outbox", "outbox"),
        ("rate_limit_rps", "0", 0),
    ],
)
def test_parse_accepts_valid_values(name: str, raw: str, expected: object) -> None:
    assert specs.spec(name).parse(raw) == expected


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("db_pool_size", "-1", "below its minimum 1"),
        ("db_pool_size", "1001", "above its maximum 1000"),
        ("db_pool_size", "ten", "whole number"),
        ("event_activation", "maybe", "on/off"),
        ("publish_mode", "kafka", "one of outbox, direct"),
    ],
)
def test_parse_rejects_invalid_values_naming_the_setting(name: str, raw: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        specs.spec(name).parse(raw)
    assert name in str(err.value)


def test_unknown_setting_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown setting 'pool_size'") as err:
        specs.spec("pool_size")
    assert "db_pool_size" in (err.value.hint or "")


def test_resolve_falls_back_to_defaults_for_bad_stored_values() -> None:
    values = specs.resolve({"db_pool_size": "12", "lock_wait_ms": "garbage", "unknown": "x"})
    assert values["db_pool_size"] == 12
    assert values["lock_wait_ms"] == specs.PRESETS["recommended"]["lock_wait_ms"]
    assert "unknown" not in values
