"""Pure parts of concertops on a service described by its map: hand-off command templates, where the state
store goes, the step10 envelope, HTTP probe arithmetic, and the new signal kinds' page errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from concertops.config import Profile
from concertops.contract.envelope import payment_of, step10_payment_completed
from concertops.engine import handoff, state_store
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.model.signals import RunbookPageError, parse_signal
from concertops.sources.http_probe import Samples


class _Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


def _step() -> Step:
    return Step(id="reschedule-mode", title="t", action="set_settings", config=None)  # type: ignore[call-arg]


def test_hook_words_are_filled_one_by_one_and_never_reach_a_shell() -> None:
    change = handoff.Change("max_active_tokens", 20, 50, "QueueService.MAX_ACTIVE_TOKENS")
    argv = handoff.command("deploy.sh --set {env}={value} --was {current} '{where}'", change, _step())
    assert argv == [
        "deploy.sh",
        "--set",
        "MAX_ACTIVE_TOKENS=20",
        "--was",
        "50",
        "QueueService.MAX_ACTIVE_TOKENS",
    ]
    hostile = handoff.Change("x", "1; rm -rf /", 0, "w")
    assert handoff.command("set {value}", hostile, _step()) == ["set", "1; rm -rf /"]  # one word


@pytest.mark.parametrize("template", ["deploy {nope}", "deploy '{setting}", ""])
def test_a_bad_hook_template_is_a_usage_error(template: str) -> None:
    with pytest.raises(UsageError):
        handoff.check_template(template)


def test_a_hooks_error_line_loses_its_credentials() -> None:
    line = handoff.redact_line("refused: password=hunter2, TOKEN: abc mysql://u:pw@db/x")
    assert "hunter2" not in line and "abc" not in line and "pw@" not in line


def _profile(**values: Any) -> Profile:
    return Profile(name="p", **values)


def test_the_state_store_is_never_the_services_schema() -> None:
    step10 = _profile(database_url="mysql+pymysql://app:s3cret@db:3306/concert_real", service_map="step10")
    first, second = state_store.candidates(step10)
    assert first.url == "mysql+pymysql://app:s3cret@db:3306/concertops"
    assert second.url.startswith("sqlite:///") and second.url.endswith("state.sqlite")
    named_like_us = _profile(database_url="mysql+pymysql://app@db/concertops", service_map="step10")
    assert [s.why for s in state_store.candidates(named_like_us)] == ["the local state file"]
    twin = _profile(database_url="mysql+pymysql://root@db/concertops")
    assert [s.url for s in state_store.candidates(twin)] == ["mysql+pymysql://root@db/concertops"]
    explicit = _profile(database_url="mysql+pymysql://app@db/x", state_url="sqlite:////tmp/s.db")
    assert [s.url for s in state_store.candidates(explicit)] == ["sqlite:////tmp/s.db"]


def test_the_step10_envelope_round_trips_by_payment_id() -> None:
    row = {"key": "p-1", "user": "u-1", "reservation": "r-1", "seat": "s-1", "amount": Decimal("50000.00")}
    raw = step10_payment_completed("payment.completed", row, datetime(2026, 12, 2, 6, 0, 0, 123000, UTC))
    body = json.loads(raw)
    assert body["eventType"] == "payment.completed" and body["eventId"].startswith("evt_")
    assert body["eventTime"] == "2026-12-02T06:00:00.123Z"
    assert body["payload"] == {
        "paymentId": "p-1",
        "userId": "u-1",
        "reservationId": "r-1",
        "seatId": "s-1",
        "amount": 50000.0,
    }
    assert payment_of("step10")(_Message(raw)) == "p-1"  # type: ignore[arg-type]
    assert payment_of("step10")(_Message(b"not json")) is None  # type: ignore[arg-type]
    assert payment_of("flat")(_Message(b'{"payment_id": 7}')) == "7"  # type: ignore[arg-type]


def test_probe_samples_p95_and_failure_share() -> None:
    samples = Samples(tuple(0.1 * i for i in range(1, 21)), failed=1, unreachable=5)
    assert samples.p95_s == pytest.approx(1.9)
    assert samples.error_share == pytest.approx(6 / 25)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"kind": "http", "probe": "{availability}", "measure": "p50"}, "measure"),
        ({"kind": "http", "measure": "p95_s"}, "probe"),
        (
            {"kind": "unpublished", "topic": "{payment_completed}", "window": "1 hour", "settle": "1m"},
            "window",
        ),
    ],
)
def test_new_signal_kinds_name_the_bad_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(RunbookPageError, match=field):
        parse_signal({"name": "s", "critical": 0, **raw}, "A-1.md signals[0]")


def test_privileges_that_could_not_be_read_make_the_signal_unknown_not_measured() -> None:
    from concertops.runbooks.pages import load
    from concertops.sources.sql import SqlSource

    signal = next(s for s in load("B-3").signals if s.name == "idle_connections")
    source = SqlSource("mysql+pymysql://app@127.0.0.1:1/nowhere", 1.0)  # never connected: read as unknown
    source._privileges, source._privileges_read = None, True
    source._connect_tried = True  # as if the server had answered the first connect
    observed = source.observe(signal)
    assert observed.value is None and observed.error is not None
    assert "privileges could not be read" in observed.error
    source.close()


def test_doctor_tells_a_backend_that_is_down_from_a_name_that_does_not_resolve() -> None:
    import socket

    from concertops.sources.health import _probe_path, _run

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        down = _run("backend", f"http://127.0.0.1:{closed.getsockname()[1]}", _probe_path("/api/x"))
    finally:
        closed.close()
    assert not down.ok and down.fix.startswith("nothing listens there: the service is down"), down
    unresolved = _run("backend", "http://no-such-host.invalid", _probe_path("/api/x"))
    assert not unresolved.ok and unresolved.fix.startswith("the host name does not resolve"), unresolved
