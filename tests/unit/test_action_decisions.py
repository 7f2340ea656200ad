"""Each action's ``decide`` is pure: what gather saw and the step's limits in, the step's exact targets out.
No database, no Redis, no broker (force-expire's has its own file)."""

from __future__ import annotations

import pytest

from concertops.engine import activate_waiting, change_settings, kill_idle, mark_sold_out
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue


def test_mark_sold_out_marks_what_it_found_and_refuses_more_than_its_limit() -> None:
    assert mark_sold_out.decide([], "mark", 5) == ([], "no unmarked sold-out schedule")
    ids, line = mark_sold_out.decide([3, 7], "mark", 5)
    assert ids == [3, 7] and line == "mark 2 schedule(s) sold out: 3, 7"
    with pytest.raises(UsageError, match="more than 2 schedules to mark"):
        mark_sold_out.decide([1, 2, 3], "mark", 2)


def test_activation_fills_the_free_slots_within_the_steps_limit() -> None:
    queue = activate_waiting.Queue(active=40, waiting=300, ceiling=50, ceiling_is_deployed=False)
    assert activate_waiting.decide(queue, max_tokens=100).activate == 10  # the ceiling's free slots
    assert activate_waiting.decide(queue, max_tokens=4).activate == 4  # the step's own limit
    few = activate_waiting.Queue(active=0, waiting=3, ceiling=50, ceiling_is_deployed=False)
    assert activate_waiting.decide(few, max_tokens=100).activate == 3


def test_activation_says_why_none_and_what_would_help() -> None:
    full = activate_waiting.Queue(active=50, waiting=300, ceiling=50, ceiling_is_deployed=False)
    decided = activate_waiting.decide(full, 100)
    assert decided.activate == 0 and "a3 --raise-tokens N" in decided.blocked
    deployed = activate_waiting.Queue(active=50, waiting=300, ceiling=50, ceiling_is_deployed=True)
    assert "a deploy" in activate_waiting.decide(deployed, 100).blocked
    stale = activate_waiting.Queue(active=70, waiting=300, ceiling=50, ceiling_is_deployed=True)
    assert "the map's deploy constant is stale" in activate_waiting.decide(stale, 100).blocked
    empty = activate_waiting.Queue(active=0, waiting=0, ceiling=50, ceiling_is_deployed=True, expired=2)
    nothing = activate_waiting.decide(empty, 100)
    assert nothing.activate == 0 and not nothing.blocked and "2 expired token(s)" in nothing.line


def _victim(cid: int, in_trx: bool = False) -> kill_idle.Victim:
    return (cid, "app", "10.0.0.5:4711", "booking", 120, in_trx)


def test_kill_idle_takes_at_most_its_limit_in_order_and_says_what_is_left() -> None:
    found = [_victim(11, in_trx=True), _victim(12), _victim(13)]
    victims, line = kill_idle.decide(found, kills=2, user="app", idle=60)
    assert [v[0] for v in victims] == [11, 12]
    assert "kill 2 of 3 connection(s) of app idle for over 60 s" in line
    assert "1 inside an open transaction, which rolls back" in line and "1 left idle" in line
    assert kill_idle.decide([], 2, "app", 60) == ([], "no connection of app idle for over 60 s")


def _settings_step(value: int) -> Step:
    config = catalogue.SetSettingParams(setting="db_pool_size", value=value, min=10, max=100)
    return Step("pool", "Size the pool", "set_setting", config)


def test_a_settings_change_is_what_differs_within_the_limits() -> None:
    step = _settings_step(30)
    now = change_settings.Current({"db_pool_size": 10})
    [change] = change_settings.decide(step, {"db_pool_size": 30}, now)
    assert (change.setting, change.current, change.value) == ("db_pool_size", 10, 30)
    assert (
        change_settings.decide(step, {"db_pool_size": 30}, change_settings.Current({"db_pool_size": 30}))
        == []
    )
    with pytest.raises(UsageError, match="above this step's limit 100"):
        change_settings.decide(_settings_step(30), {"db_pool_size": 500}, now)


def test_a_deployed_setting_the_map_does_not_name_is_handed_over_as_unknown() -> None:
    deployed = change_settings.Current({}, {}, deployed=True)
    [change] = change_settings.decide(_settings_step(30), {"db_pool_size": 30}, deployed)
    assert change.current == "?" and "find where it lives" in change.where


def test_dlq_replay_plans_at_most_its_limit_and_quarantines_the_much_replayed() -> None:
    from concertops.engine import dlq_replay

    assert dlq_replay.decide(120, 3, 100, 3).startswith("replay 100 of 120 DLQ message(s) on 3 partition(s)")
    assert not dlq_replay.set_aside(2, 3) and dlq_replay.set_aside(3, 3)


def test_double_payments_are_listed_never_refunded() -> None:
    from concertops.engine import list_double_payments

    assert list_double_payments.decide([]) == (0, "no reservation paid twice")
    listed, detail = list_double_payments.decide([(7, "70,71")])
    assert listed == 1 and detail.endswith("refund by hand: 7: 70,71")


def test_republish_sends_only_what_the_topic_lacks_and_marks_what_it_holds() -> None:
    from concertops.engine import republish

    outbox = {"e1": "PENDING", "e2": "PUBLISHED", "e3": "SENDING", "e9": "FAILED"}
    decision = republish.decide(["e1", "e2", "e3", "e4"], {"e3": 1, "e9": 1}, limit=10, outbox=outbox)
    assert decision.send == ["e1", "e2", "e4"] and decision.on_topic == 1
    assert decision.delivered == ["e3", "e9"]  # unsent rows whose event the topic holds: marked sent
    assert decision.new == ["e4"] and decision.lost == ["e2"]  # queued: written, or PENDING again


def test_republish_without_an_outbox_only_sends_and_keeps_its_limit() -> None:
    from concertops.engine import republish

    decision = republish.decide(["p1", "p2"], {"p2": 2}, limit=5)
    assert (decision.send, decision.delivered, decision.new) == (["p1"], [], [])
    with pytest.raises(UsageError, match="more than --max-events 1"):
        republish.decide(["p1", "p2", "p3"], {}, limit=1)


def test_republish_read_back_fails_on_a_missing_event_and_counts_copies() -> None:
    from concertops.engine.republish import read_back

    fine = read_back(["a", "b"], {"a": 1, "b": 2}, 2, "published 2")
    assert fine.result == "ok" and "2 of 2 on the topic, 1 duplicate(s)" in fine.detail
    assert read_back(["a", "b"], {"a": 1}, 2, "published 2").result == "failed"
