"""Runbook pages: every shipped page loads; a malformed one fails loudly with its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from concertops.model.page import parse
from concertops.model.signals import RunbookPageError, parse_selector
from concertops.runbooks.catalogue import CATALOGUE
from concertops.runbooks.pages import RUNBOOK_IDS, load, normalise_id
from concertops.runbooks.registry import all_runbooks

GOOD = """---
id: X-1
title: t
module: a1_lock_contention
signals:
  - {name: s, kind: gauge, metric: m, warning: 1}
---
body
"""


def test_every_runbook_has_its_page_module_and_a_main_signal() -> None:
    runbooks = all_runbooks()
    assert [rb.id for rb in runbooks] == list(RUNBOOK_IDS)
    for rb in runbooks:
        assert rb.page.body and rb.page.remediation, rb.id
        assert callable(rb.module.verdict), rb.id
        assert sum(s.main for s in rb.page.signals) == 1, rb.id


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (("kind: gauge", "kind: gauges"), "kind 'gauges'"),
        (("metric: m, ", ""), "field 'metric'"),
        (("warning: 1", "warning: lots"), "field 'warning' must be a number"),
        (("warning: 1", "labels: 'x=1', warning: 1"), "labels"),
        (("id: X-1", "id: Y-1"), "file name says"),
        (("title: t\n", ""), "field 'title'"),
    ],
)
def test_a_malformed_page_names_the_file_and_field(change: tuple[str, str], names: str) -> None:
    with pytest.raises(RunbookPageError) as raised:
        parse(GOOD.replace(*change), Path("/pages/X-1.md"), CATALOGUE)
    assert "/pages/X-1.md" in str(raised.value) and names in str(raised.value)


def test_a_missing_page_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunbookPageError, match="unreadable"):
        load("A-1", tmp_path)


@pytest.mark.parametrize("text", ["a1", "A1", "a-1", "A-1", " a_1 "])
def test_runbook_ids_are_forgiving(text: str) -> None:
    assert normalise_id(text) == "A-1"


def test_unknown_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        normalise_id("C-9")


def test_label_selectors_follow_promql() -> None:
    matchers = parse_selector('route="/payments", status=~"5.."')
    assert all(m.matches({"route": "/payments", "status": "503"}) for m in matchers)
    assert not all(m.matches({"route": "/payments", "status": "409"}) for m in matchers)
    with pytest.raises(ValueError):
        parse_selector("status=5")


STEP_PAGE = GOOD.replace(
    "---\nbody",
    "remediation:\n"
    "  - id: expire\n"
    "    title: t\n"
    "    action: force_expire\n"
    "    when: [s]\n"
    "    limits: {batch: 10, batch_ms: 0, max_rows: 100, sleep: 0}\n"
    "  - id: modes\n"
    "    title: t\n"
    "    action: set_settings\n"
    "    when: [s]\n"
    "    params: {settings: {publish_mode: outbox}}\n"
    "---\nbody",
)


def test_a_page_with_typed_steps_loads_them_as_frozen_models() -> None:
    page = parse(STEP_PAGE, Path("/pages/X-1.md"), CATALOGUE)
    expire = page.remediation[0].config
    assert (expire.batch, expire.max_rows, expire.sleep) == (10, 100, 0.0)
    assert isinstance(expire.sleep, float)
    with pytest.raises(AttributeError):
        expire.batch = 5  # frozen: an action cannot change its own limits
    assert page.remediation[0].options == {
        "batch": "--batch-size",
        "batch_ms": "--batch-ms",
        "max_rows": "--max-rows",
        "sleep": "--sleep",
    }


@pytest.mark.parametrize(
    ("change", "step", "field"),
    [
        (("action: force_expire", "action: force-expire"), "expire", "field 'action': unknown action id"),
        (("batch: 10", "batchsize: 10"), "expire", "field 'limits.batchsize': unknown limit"),
        (("batch: 10", "batch: lots"), "expire", "field 'limits.batch': must be int"),
        (("batch: 10", "batch: 0"), "expire", "field 'limits.batch': 0 is below 1"),
        (("batch: 10", "batch: 10.5"), "expire", "field 'limits.batch': must be int"),
        ((", sleep: 0", ""), "expire", "field 'limits.sleep': missing"),
        (("limits: {batch", "params: {batch: 1}\n    limits: {batch"), "expire", "field 'params.batch'"),
        (("publish_mode: outbox", "publish_mod: outbox"), "modes", "field 'params.settings.publish_mod'"),
        (("publish_mode: outbox", "publish_mode: kafka"), "modes", "field 'params.settings.publish_mode'"),
        (
            ("when: [s]\n    limits", "when: [s]\n    options: {batchs: --b}\n    limits"),
            "expire",
            "options.batchs",
        ),
    ],
)
def test_a_typo_in_a_step_names_the_file_the_step_and_the_field(
    change: tuple[str, str], step: str, field: str
) -> None:
    with pytest.raises(RunbookPageError) as raised:
        parse(STEP_PAGE.replace(*change, 1), Path("/pages/X-1.md"), CATALOGUE)
    message = str(raised.value)
    assert "/pages/X-1.md" in message and f"({step})" in message and field in message, message


@pytest.mark.parametrize("map_name", ["reference", "step10"])
def test_every_action_of_the_catalogue_has_one_implementation(map_name: str) -> None:
    from concertops.contract import service_map
    from concertops.engine.dispatch import implementations

    assert set(implementations(service_map.load(map_name))) == set(CATALOGUE.values())


def test_every_runbook_option_comes_from_its_steps_models() -> None:
    from concertops.cli.runbook_cmds import COMMON, page_knobs
    from concertops.cli.runbook_group import runbook_command

    common = {name for name, _kind, _option in COMMON} | {"help"}
    for rb in all_runbooks():
        declared = {p.name for p in runbook_command(rb.id).params} - common
        assert declared == {k.name for k in page_knobs(rb.page)}, rb.id


def test_every_runbook_id_has_its_page_module_alert_and_game_day() -> None:
    """A runbook is its page and its module, found by id; what proves it is its alert and its game day."""
    import importlib
    import re

    from alert_rules import load_rules

    from concertops.simulate.incidents import RECIPES

    root = Path(__file__).parents[2]
    alerted = {rule["labels"].get("runbook") for rule in load_rules()}
    game_days = set(
        re.findall(r"^def test_([a-z]\d+)_", (root / "tests/gameday/test_gamedays.py").read_text(), re.M)
    )
    assert RUNBOOK_IDS, "no runbook page found"
    for runbook_id in RUNBOOK_IDS:
        page = load(runbook_id)
        module = importlib.import_module(f"concertops.runbooks.{page.module}")
        assert callable(module.verdict), runbook_id
        assert runbook_id in alerted, f"{runbook_id}: no alert rule names it"
        assert runbook_id in RECIPES, f"{runbook_id}: no incident recipe to cause it"
        assert runbook_id.replace("-", "").lower() in game_days, f"{runbook_id}: no game day test"


def test_a_page_added_to_the_folder_is_a_runbook(tmp_path: Path) -> None:
    from concertops.runbooks.pages import discover

    for name in ("A-1.md", "B-10.md", "B-2.md", "README.md", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert discover(tmp_path) == ("A-1", "B-2", "B-10")
