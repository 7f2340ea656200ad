"""The booking service as a simulated incident drives it: its users (HTTP), its operators (settings), and
the organiser who adds a schedule (the contract's tables). Nothing here imports the service's code."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import sqlalchemy as sa

from concertops.config import Profile
from concertops.contract import settings_store
from concertops.contract.schema import queue_token
from concertops.model.errors import ConcertopsError, ConfigError
from concertops.redact import redact_url
from concertops.sources.database import open_engine
from concertops.sources.instances import wait_applied

OPERATOR = "concertops simulate"
HTTP_TIMEOUT_S = 30.0


class SimulationError(ConcertopsError):
    """The incident could not be caused (the service did not answer as expected)."""


class Service:
    def __init__(self, profile: Profile) -> None:
        if not profile.backend_urls:
            raise ConfigError(
                "no backend URL to drive", "set backend_urls in the profile or CONCERTOPS_BACKEND_URLS"
            )
        if not profile.metrics_urls and not profile.prometheus_url:
            raise ConfigError(
                "no way to see which settings the instances applied",
                "set metrics_urls (CONCERTOPS_METRICS_URLS) or a Prometheus URL",
            )
        self.profile = profile
        self.urls = list(profile.backend_urls)
        self.engine = open_engine(profile.database_url, connections=4)
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()
        self.engine.dispose()

    # -- operators ------------------------------------------------------------------------------------------
    def settings(self, legacy: tuple[str, ...] = (), **changes: object) -> None:
        """The manual's "current" (legacy) value of each setting in ``legacy``, and ``changes``, written as
        operator ``concertops simulate``; returns once every instance runs them. Only what the incident
        needs: the other runbooks keep the state they were in."""
        from concertops.contract.settings import PRESETS

        wanted = {name: PRESETS["legacy"][name] for name in legacy} | changes
        with self.engine.begin() as conn:
            version, _ = settings_store.write(conn, wanted, OPERATOR, "simulated incident")
        applied, seen = wait_applied(self.profile, version, timeout_s=30)
        if not applied:
            raise SimulationError(
                f"the instances did not apply settings version {version} within 30 s (they run {seen})",
                "check that every backend instance is up: concertops doctor",
            )

    # -- the organiser ---------------------------------------------------------------------------------------
    def new_schedule(self, seats: int) -> int:
        from concertops.contract.seeding import seed

        return seed(self.engine, 1, 1, seats).schedule_ids[0]

    # -- users -----------------------------------------------------------------------------------------------
    def post(
        self, path: str, body: dict[str, Any], token: str | None = None, instance: int = 0
    ) -> httpx.Response:
        url = self.urls[instance % len(self.urls)]
        headers = {"X-Queue-Token": token} if token else {}
        try:
            return self.http.post(f"{url}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SimulationError(f"the backend at {redact_url(url)} did not answer: {exc}") from None

    def issue_tokens(self, users: list[int]) -> list[str]:
        return [str(self.post("/queue/tokens", {"user_id": u}).json()["token"]) for u in users]

    def active_tokens(self, users: list[int], timeout_s: float = 30.0) -> list[str]:
        """One queue token per user, each ACTIVE (the activator admits them within one period)."""
        tokens = self.issue_tokens(users)
        pending = set(tokens)
        deadline = time.monotonic() + timeout_s
        while pending:
            pending = {t for t in pending if self._token_status(t) != "ACTIVE"}
            if pending and time.monotonic() > deadline:
                raise SimulationError(
                    f"{len(pending)} of {len(tokens)} queue tokens not ACTIVE after {timeout_s:.0f}s",
                    "max_active_tokens may be too low for this scenario",
                )
            time.sleep(0.2)
        return tokens

    def _token_status(self, token: str) -> str:
        answer = self.http.get(f"{self.urls[0]}/queue/tokens/{token}")
        return str(answer.json().get("status"))

    def hold(self, token: str, schedule: int, seat_no: int, instance: int = 0) -> httpx.Response:
        return self.post("/reservations", {"schedule_id": schedule, "seat_no": seat_no}, token, instance)

    def hold_each(self, users: list[int], schedule: int) -> list[tuple[int, int]]:
        """Each user holds seat ``i + 1``: the (reservation id, user id) of every hold."""
        tokens = self.active_tokens(users)
        held = []
        for i, (user, token) in enumerate(zip(users, tokens, strict=True)):
            answer = self.hold(token, schedule, i + 1, instance=i)
            if answer.status_code != 201:
                raise SimulationError(
                    f"holding seat {i + 1} answered {answer.status_code}: {answer.text[:200]}"
                )
            held.append((int(answer.json()["reservationId"]), user))
        return held

    def pay(self, reservation_id: int, user_id: int, instance: int = 0) -> int:
        return self.post(
            "/payments", {"reservation_id": reservation_id, "user_id": user_id}, None, instance
        ).status_code

    def at_once(self, count: int, call: Callable[[int], int]) -> dict[int, int]:
        """``call(i)`` for ``count`` users at the same moment: {HTTP status: count}."""
        with ThreadPoolExecutor(count) as pool:
            codes = list(pool.map(call, range(count)))
        return {code: codes.count(code) for code in sorted(set(codes))}

    # -- state -----------------------------------------------------------------------------------------------
    def expire_queue(self) -> int:
        """Tokens of earlier runs out of the way, so a scenario starts from an empty queue."""
        with self.engine.begin() as conn:
            done = conn.execute(
                queue_token.update()
                .where(queue_token.c.status.in_(["ACTIVE", "WAITING"]))
                .values(status="EXPIRED")
            )
        return int(done.rowcount or 0)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def metric(self, name: str) -> list[float]:
        """``name`` summed on each instance's /metrics (instances that answer)."""
        from concertops.sources.scrape import fetch_samples

        values = []
        for url in self.profile.metrics_urls:
            try:
                samples = fetch_samples(url, timeout_s=5)
            except httpx.HTTPError:
                continue
            values.append(sum(value for sample, _labels, value in samples if sample == name))
        return values

    def wait_metric(
        self, name: str, check: Callable[[list[float]], bool], what: str, timeout_s: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not check(self.metric(name)):
            if time.monotonic() > deadline:
                raise SimulationError(f"{what}: not seen within {timeout_s:.0f}s on the instances' {name}")
            time.sleep(0.3)
