"""Runbook pages: every shipped page loads; a malformed one fails loudly with its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from concertops.model.signals import RunbookPageError, parse_selector
from concertops.model.page import parse
from concertops.runbooks.actions import CATALOGUE
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
