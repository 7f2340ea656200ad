"""The reference backend on the real stack: contention, idempotency, bad input, live settings, activation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from harness import Backend, statuses, wait_for


def test_fifty_concurrent_reservations_of_one_seat_hold_it_exactly_once(booking: Backend) -> None:
    booking.set(max_active_tokens=200)
    schedule = booking.new_schedule(seats=10)
    tokens = booking.active_tokens(list(range(1000, 1050)))
    with ThreadPoolExecutor(50) as pool:
        responses = list(
            pool.map(
                lambda i: booking.post(
                    "/reservations", {"schedule_id": schedule, "seat_no": 5}, tokens[i], i % 2
                ),
                range(50),
            )
        )
    assert statuses(responses) == {201: 1, 409: 49}
    assert all(r.json()["remainingSeats"] == 9 for r in responses if r.json().get("error") == "seat_taken")
    held = booking.rows(
        "SELECT status, COUNT(*) FROM reservation WHERE schedule_id = :s GROUP BY status", s=schedule
    )
    assert [tuple(r) for r in held] == [("HELD", 1)]
    assert (
        booking.scalar("SELECT status FROM seat WHERE schedule_id = :s AND seat_no = 5", s=schedule) == "HELD"
    )


def test_paying_twice_at_once_charges_once(booking: Backend) -> None:
    schedule = booking.new_schedule()
    token = booking.active_token(2001)
    reservation = booking.post("/reservations", {"schedule_id": schedule, "seat_no": 1}, token).json()
    body = {"reservation_id": reservation["reservationId"], "user_id": 2001}
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda i: booking.post("/payments", body, instance=i % 2), range(4)))
    assert statuses(responses) == {201: 1, 409: 3}
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {"already_paid"}
    assert (
        booking.scalar(
            "SELECT COUNT(*) FROM payment WHERE reservation_id = :r", r=reservation["reservationId"]
        )
        == 1
    )


def test_bad_input_gets_a_4xx_json_error_never_a_500(booking: Backend) -> None:
    base = booking.urls[0]
    schedule = booking.new_schedule()
    waiting = httpx.post(f"{base}/queue/tokens", json={"user_id": 3001}).json()["token"]
    booking.set(max_active_tokens=1)
    cases = [
        httpx.post(
            f"{base}/payments", content=b'{"reservation_id": ', headers={"content-type": "application/json"}
        ),
        httpx.post(f"{base}/payments", json={"reservation_id": "x", "user_id": 1}),
        httpx.post(f"{base}/payments", json={"reservation_id": 999999, "user_id": 1}),
        httpx.post(f"{base}/reservations", json={"schedule_id": schedule, "seat_no": 1}),
        httpx.post(
            f"{base}/reservations",
            json={"schedule_id": schedule, "seat_no": 1},
            headers={"X-Queue-Token": "no-such-token"},
        ),
        httpx.get(f"{base}/queue/tokens/no-such-token"),
        httpx.get(f"{base}/schedules/999999/seats"),
        httpx.get(f"{base}/concerts/999999/schedules"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)
        assert "error" in response.json() and response.json()["message"]
    # Paying a reservation that is no longer HELD.
    booking.set(max_active_tokens=50)
    token = booking.active_token(3002)
    held = booking.post("/reservations", {"schedule_id": schedule, "seat_no": 2}, token).json()
    with booking.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE reservation SET status = 'EXPIRED' WHERE reservation_id = {held['reservationId']}"
        )
    refused = booking.post("/payments", {"reservation_id": held["reservationId"], "user_id": 3002})
    assert refused.status_code == 409 and refused.json()["error"] == "not_held"
    assert waiting  # issued while the queue was full: still a valid token


def test_a_setting_change_is_applied_live_on_every_instance(booking: Backend) -> None:
    before = booking.metric_all("mysql_connection_pool_size")
    assert before == [30.0, 30.0]
    booking.set(max_active_tokens=77, db_pool_size=12)
    assert booking.metric_all("booking_setting_value", {"name": "max_active_tokens"}) == [77.0, 77.0]
    assert booking.metric_all("mysql_connection_pool_size") == [12.0, 12.0]
    booking.set(publish_mode="direct")
    assert booking.metric_all("booking_setting_info", {"name": "publish_mode", "value": "direct"}) == [
        1.0,
        1.0,
    ]
    # The instances still serve after the pool swap.
    assert httpx.get(f"{booking.urls[1]}/schedules/{booking.new_schedule()}/seats").status_code == 200


def test_event_activation_admits_the_next_user_at_once(booking: Backend) -> None:
    booking.set(max_active_tokens=1, queue_activation_interval_s=3600, event_activation=True)
    schedule = booking.new_schedule()
    first = booking.active_token(4001)
    second = booking.post("/queue/tokens", {"user_id": 4002}).json()["token"]
    time.sleep(0.5)
    assert httpx.get(f"{booking.urls[0]}/queue/tokens/{second}").json()["status"] == "WAITING"
    held = booking.post("/reservations", {"schedule_id": schedule, "seat_no": 1}, first).json()
    paid_at = time.monotonic()
    assert (
        booking.post("/payments", {"reservation_id": held["reservationId"], "user_id": 4001}).status_code
        == 201
    )
    wait_for(
        lambda: httpx.get(f"{booking.urls[0]}/queue/tokens/{second}").json()["status"] == "ACTIVE",
        timeout=5,
        interval=0.05,
        what="the waiting user to be activated by the payment event",
    )
    assert time.monotonic() - paid_at < 2  # polling alone would take up to an hour here


def test_without_event_activation_the_next_user_waits_for_polling(booking: Backend) -> None:
    booking.set(max_active_tokens=1, queue_activation_interval_s=3600, event_activation=False)
    booking.release_tokens()
    first = booking.post("/queue/tokens", {"user_id": 4101}).json()["token"]
    time.sleep(1.0)
    assert httpx.get(f"{booking.urls[0]}/queue/tokens/{first}").json()["status"] == "WAITING"
    booking.set(queue_activation_interval_s=1)
    wait_for(
        lambda: httpx.get(f"{booking.urls[0]}/queue/tokens/{first}").json()["status"] == "ACTIVE",
        timeout=5,
        what="polling to activate the token after the interval was shortened",
    )
