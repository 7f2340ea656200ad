"""Load scenarios mirroring the incident manual's four k6 scenarios, driven by Locust (headless).

Run as ``python -m concertops.simulate.load`` (Locust patches the process with gevent, so it gets a
process of its own); prints one JSON document. The business error rate counts 5xx and transport failures
only: a 409 after a sell-out is an outcome, not an error (the manual's A-2 lesson), while the Locust/k6
notion of "failed" (any 4xx/5xx) is reported beside it for comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from itertools import count
from typing import Any

SCENARIOS = ("reservation-stress", "payment-load", "queue-spike", "concert-endurance")
TOKEN_WAIT_S = 30.0


@dataclass
class Recorder:
    times_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def record(self, status: int, elapsed_ms: float) -> None:
        self.times_ms.append(elapsed_ms)
        key = str(status) if status else "transport_error"
        self.statuses[key] = self.statuses.get(key, 0) + 1


@dataclass(frozen=True)
class LoadResult:
    scenario: str
    users: int
    duration_s: float
    instances: int
    requests: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    statuses: dict[str, int]
    conflicts_409: int
    business_errors: int
    business_error_rate: float
    http_req_failed_rate: float


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 2)


def summarise(scenario: str, users: int, duration: float, instances: int, rec: Recorder) -> LoadResult:
    times = sorted(rec.times_ms)
    total = len(times)
    errors = sum(n for s, n in rec.statuses.items() if s == "transport_error" or s.startswith("5"))
    failed = sum(n for s, n in rec.statuses.items() if s == "transport_error" or int(s) >= 400)
    return LoadResult(
        scenario=scenario,
        users=users,
        duration_s=round(duration, 2),
        instances=instances,
        requests=total,
        throughput_rps=round(total / duration, 1) if duration else 0.0,
        p50_ms=percentile(times, 0.50),
        p95_ms=percentile(times, 0.95),
        p99_ms=percentile(times, 0.99),
        statuses=dict(sorted(rec.statuses.items())),
        conflicts_409=rec.statuses.get("409", 0),
        business_errors=errors,
        business_error_rate=round(errors / total, 4) if total else 0.0,
        http_req_failed_rate=round(failed / total, 4) if total else 0.0,
    )


def run(scenario: str, urls: list[str], users: int, duration: float, schedule_id: int | None) -> LoadResult:
    import gevent
    from locust import FastHttpUser, between, task
    from locust.env import Environment

    rec = Recorder()
    user_ids = count(random.randint(10_000_000, 90_000_000))
    hosts = count()

    def on_request(response: Any = None, response_time: float = 0.0, exception: Any = None, **_: Any) -> None:
        status = getattr(response, "status_code", 0) or 0
        rec.record(0 if exception and not status else status, response_time)

    def discover_schedule(client: Any, base: str) -> int:
        concerts = client.get(f"{base}/concerts", name="/concerts").json()
        return int(
            client.get(
                f"{base}/concerts/{concerts[0]['concertId']}/schedules", name="/concerts/{id}/schedules"
            ).json()[0]["scheduleId"]
        )

    class BookingUser(FastHttpUser):
        abstract = True
        wait_time = between(0.05, 0.15)
        host = urls[0]

        def on_start(self) -> None:
            self.base = urls[next(hosts) % len(urls)]
            self.user_id = next(user_ids)
            self.schedule = schedule_id or discover_schedule(self.client, self.base)
            self.token: str | None = None

        def acquire_token(self) -> None:
            body = self.client.post(
                f"{self.base}/queue/tokens", json={"user_id": self.user_id}, name="/queue/tokens"
            ).json()
            deadline = time.monotonic() + TOKEN_WAIT_S
            while time.monotonic() < deadline:
                status = (
                    self.client.get(f"{self.base}/queue/tokens/{body['token']}", name="/queue/tokens/{token}")
                    .json()
                    .get("status")
                )
                if status == "ACTIVE":
                    self.token = body["token"]
                    return
                gevent.sleep(0.5)

        def prepare_to_book(self) -> None:
            """An ACTIVE queue token and the number of seats to pick from."""
            self.acquire_token()
            seats = self.client.get(
                f"{self.base}/schedules/{self.schedule}/seats", name="/schedules/{id}/seats"
            )
            self.seats = len(seats.json())

        def reserve(self, seat: int) -> Any:
            return self.client.post(
                f"{self.base}/reservations",
                json={"schedule_id": self.schedule, "seat_no": seat},
                headers={"X-Queue-Token": self.token or ""},
                name="/reservations",
                catch_response=False,
            )

    class ReservationStress(BookingUser):
        """Everyone competes for the same seats; after the sell-out the answers are 409."""

        def on_start(self) -> None:
            super().on_start()
            self.prepare_to_book()

        @task
        def reserve_random_seat(self) -> None:
            self.reserve(random.randint(1, self.seats))

    class PaymentLoad(BookingUser):
        """Reserve, pay, then keep paying the paid reservation (duplicates answer 409)."""

        def on_start(self) -> None:
            super().on_start()
            self.prepare_to_book()
            self.reservation: int | None = None

        @task
        def step(self) -> None:
            if self.reservation is None:
                response = self.reserve(random.randint(1, self.seats))
                if response.status_code == 201:
                    self.reservation = response.json()["reservationId"]
                return
            self.client.post(
                f"{self.base}/payments",
                json={"reservation_id": self.reservation, "user_id": self.user_id},
                name="/payments",
            )

    class QueueSpike(BookingUser):
        """A crowd arriving at once: tokens issued and polled."""

        @task
        def join_and_poll(self) -> None:
            body = self.client.post(
                f"{self.base}/queue/tokens", json={"user_id": next(user_ids)}, name="/queue/tokens"
            ).json()
            for _ in range(3):
                self.client.get(f"{self.base}/queue/tokens/{body['token']}", name="/queue/tokens/{token}")

    class ConcertEndurance(BookingUser):
        """Browsing concerts and schedules: served from the cache after the first request."""

        @task
        def browse(self) -> None:
            concerts = self.client.get(f"{self.base}/concerts", name="/concerts").json()
            self.client.get(
                f"{self.base}/concerts/{concerts[0]['concertId']}/schedules", name="/concerts/{id}/schedules"
            )

    classes = {
        "reservation-stress": ReservationStress,
        "payment-load": PaymentLoad,
        "queue-spike": QueueSpike,
        "concert-endurance": ConcertEndurance,
    }
    env = Environment(user_classes=[classes[scenario]], host=urls[0])
    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    started = time.monotonic()
    runner.start(users, spawn_rate=users)
    gevent.spawn_later(duration, runner.quit)
    runner.greenlet.join()
    return summarise(scenario, users, time.monotonic() - started, len(urls), rec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m concertops.simulate.load")
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument(
        "--url", action="append", required=True, help="backend base URL (repeat per instance)"
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--schedule", type=int, default=None)
    args = parser.parse_args(argv)
    result = run(args.scenario, args.url, args.users, args.duration, args.schedule)
    json.dump(asdict(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    sys.exit(main())
