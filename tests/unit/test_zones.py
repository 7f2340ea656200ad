"""Zones a map may name, and what a table's rows say of them (pure: the rows are given)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from concertops.contract import service_map
from concertops.contract.zones import UnknownZone, cutoff_offset, offset_at, zone_of
from concertops.model.errors import ConfigError
from concertops.sources.clock import ZoneUnreadable, judge_rows

# Europe/Berlin left summer time (+02:00) for winter time (+01:00) at 01:00 UTC on 2026-10-25.
CHANGE = datetime(2026, 10, 25, 1, 0)
PAIR = ("heldAt", "createdAt")


@pytest.mark.parametrize(
    ("name", "offset"), [("UTC", 0), ("+09:00", 540), ("-03:30", -210), ("Asia/Seoul", 540)]
)
def test_a_zone_is_utc_an_offset_or_an_iana_name(name: str, offset: int) -> None:
    assert offset_at(name, datetime(2026, 12, 3, 12)) == timedelta(minutes=offset)


@pytest.mark.parametrize("name", ["Asia/Seol", "Seoul", "+15:00", "../../etc/passwd", "EST5EDT/x"])
def test_a_zone_that_does_not_exist_is_refused(name: str) -> None:
    with pytest.raises(UnknownZone, match="not a time zone"):
        zone_of(name)


def test_a_map_with_a_zone_that_does_not_exist_names_the_file_and_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load((service_map.maps_dir() / "step10.yml").read_text())
    path = tmp_path / "mine.yml"
    path.write_text(yaml.safe_dump({**raw, "zone": "Europe/Berln"}))
    with pytest.raises(ConfigError) as caught:
        service_map.load(str(path))
    line = caught.value.one_line()
    assert str(path) in line and "field zone" in line and "Europe/Berln" in line, line


def test_a_map_with_half_a_clock_pair_names_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load((service_map.maps_dir() / "step10.yml").read_text())
    raw["tables"]["reservation"]["clock"] = {"service": "heldAt"}
    path = tmp_path / "mine.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        service_map.load(str(path))
    line = caught.value.one_line()
    assert "tables.reservation.clock" in line and "database" in line, line


def test_an_iana_zone_follows_daylight_saving_time() -> None:
    assert offset_at("Europe/Berlin", CHANGE - timedelta(minutes=1)) == timedelta(hours=2)
    assert offset_at("Europe/Berlin", CHANGE) == timedelta(hours=1)


def test_a_cutoff_within_a_day_of_a_change_takes_the_smaller_offset() -> None:
    """Spring forward (+01:00 → +02:00 on 2026-03-29 01:00 UTC): for a day after, a cutoff stays at +01:00,
    so a hold written before the change is never called overdue before it is due."""
    spring = datetime(2026, 3, 29, 1, 0)
    assert cutoff_offset("Europe/Berlin", spring + timedelta(hours=2)) == timedelta(hours=1)
    assert cutoff_offset("Europe/Berlin", spring + timedelta(hours=25)) == timedelta(hours=2)
    assert cutoff_offset("Europe/Berlin", CHANGE + timedelta(hours=2)) == timedelta(hours=1)


def _rows(offset_s: int, count: int = 20, at: datetime = datetime(2026, 12, 3, 12)) -> list:
    return [(at - timedelta(minutes=i), offset_s + (i % 3)) for i in range(count)]


def test_rows_that_agree_with_the_map_say_nothing_more() -> None:
    reading = judge_rows("Asia/Seoul", "reservation", "reservation", PAIR, 0, _rows(9 * 3600), _NOW)
    assert not reading.contradicted and reading.offset == timedelta(hours=9) and reading.note == ""


def test_rows_written_at_plus_nine_contradict_a_utc_map_and_are_judged_at_plus_nine() -> None:
    reading = judge_rows("UTC", "reservation", "reservation", PAIR, 0, _rows(9 * 3600), _NOW)
    assert reading.contradicted and reading.offset == timedelta(hours=9)
    assert "the service writes times +09:00 from UTC" in reading.note and "the map says UTC" in reading.note


def test_a_server_east_of_utc_is_counted_in() -> None:
    """The database writes its own column in its zone (+02:00 here): a service at +09:00 differs by 7 h."""
    reading = judge_rows("+09:00", "payment", "payment", PAIR, 7200, _rows(7 * 3600), _NOW)
    assert not reading.contradicted


def test_rows_on_both_sides_of_a_change_agree_with_the_iana_zone_and_not_with_one_offset() -> None:
    before = [(CHANGE - timedelta(hours=h), 7200) for h in range(1, 6)]
    after = [(CHANGE + timedelta(hours=h), 3600) for h in range(1, 6)]
    rows = after[::-1] + before
    now = CHANGE + timedelta(hours=6)
    assert not judge_rows("Europe/Berlin", "reservation", "reservation", PAIR, 0, rows, now).contradicted
    with pytest.raises(ZoneUnreadable, match="disagree"):
        judge_rows("+02:00", "reservation", "reservation", PAIR, 0, rows, now)


def test_no_recent_row_cannot_tell_and_says_so() -> None:
    reading = judge_rows("UTC", "reservation", "reservation", PAIR, 0, [], _NOW)
    assert (
        not reading.contradicted and "not checked: no reservation row written in the last day" in reading.note
    )


def test_rows_that_disagree_among_themselves_decide_nothing() -> None:
    rows = _rows(9 * 3600, 10) + _rows(-5 * 3600, 10)
    with pytest.raises(ZoneUnreadable, match="disagree"):
        judge_rows("UTC", "reservation", "reservation", PAIR, 0, rows, _NOW)


_NOW = datetime(2026, 12, 3, 12, 30)
