"""The HTTP API of one instance. Routes only parse and call the service; errors become JSON bodies."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import redis
import sqlalchemy as sa
from fastapi import FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from concertops.booking.domain import catalog
from concertops.booking.domain.errors import DomainError
from concertops.booking.service import BookingService, EventNotPublished, PoolExhausted

if TYPE_CHECKING:
    from concertops.booking.live_settings import LiveSettings
    from concertops.booking.metrics import Metrics

log = logging.getLogger(__name__)
CACHE_TTL_S = 60


class Instance(Protocol):
    """What the API needs of the instance that serves it (``concertops.booking.instance.Instance``)."""

    service: BookingService
    metrics: Metrics
    settings: LiveSettings
    redis: redis.Redis

    def lifespan(self, app: Any) -> Any: ...

    def health(self) -> dict[str, str]: ...


class TokenRequest(BaseModel):
    user_id: int = Field(ge=1)


class ReservationRequest(BaseModel):
    schedule_id: int = Field(ge=1)
    seat_no: int = Field(ge=1)


class PaymentRequest(BaseModel):
    reservation_id: int = Field(ge=1)
    user_id: int = Field(ge=1)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


class _RateLimiter:
    """A token bucket per instance, sized by ``rate_limit_rps`` (0 = unlimited)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._stamp = time.monotonic()

    def allow(self, rps: int) -> bool:
        if rps <= 0:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(rps), self._tokens + (now - self._stamp) * rps)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def create_app(instance: Instance) -> FastAPI:
    service, metrics, settings = instance.service, instance.metrics, instance.settings
    app = FastAPI(title="booking", version="1", lifespan=instance.lifespan)
    limiter = _RateLimiter()

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        if request.url.path.startswith("/metrics") or limiter.allow(settings.int("rate_limit_rps")):
            response = await call_next(request)
        else:
            response = _error(429, "rate_limited", "too many requests, slow down")
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if path != "/metrics":
            metrics.http_requests.labels(request.method, path, str(response.status_code)).inc()
            metrics.http_duration.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, "invalid_request", f"{where or 'body'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(PoolExhausted)
    async def pool_exhausted(_: Request, exc: PoolExhausted) -> JSONResponse:
        return _error(503, "db_pool_exhausted", str(exc))

    @app.exception_handler(EventNotPublished)
    async def not_published(_: Request, exc: EventNotPublished) -> JSONResponse:
        log.error("%s", exc)
        return _error(500, "internal_error", "payment event could not be published")

    @app.exception_handler(sa.exc.OperationalError)
    async def db_down(_: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else "?"
        log.error("database error %s: %s", code, type(exc.orig).__name__)
        return _error(503, "db_unavailable", "the database is not answering")

    @app.exception_handler(redis.RedisError)
    async def redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
        return _error(503, "redis_unavailable", f"Redis is not answering: {type(exc).__name__}")

    @app.post("/queue/tokens", status_code=201)
    def issue_token(body: TokenRequest) -> dict[str, object]:
        return service.issue_token(body.user_id)

    @app.get("/queue/tokens/{token}")
    def token_status(token: str) -> dict[str, object]:
        return service.token_status(token)

    @app.get("/concerts")
    def concerts() -> Any:
        return _cached(instance, "concerts", catalog.concerts)

    @app.get("/concerts/{concert_id}/schedules")
    def schedules(concert_id: int) -> Any:
        return _cached(instance, f"schedules:{concert_id}", lambda conn: catalog.schedules(conn, concert_id))

    @app.get("/schedules/{schedule_id}/seats")
    def seats(schedule_id: int) -> Any:
        with service.connection() as conn:
            return catalog.seats(conn, schedule_id)

    @app.post("/reservations", status_code=201)
    def reserve(
        body: ReservationRequest, x_queue_token: str | None = Header(default=None)
    ) -> dict[str, object]:
        return service.reserve(x_queue_token, body.schedule_id, body.seat_no)

    @app.post("/payments", status_code=201)
    def pay(body: PaymentRequest) -> dict[str, object]:
        return service.pay(body.reservation_id, body.user_id)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        checks = instance.health()
        ok = checks["database"] == "ok" and checks["redis"] == "ok"
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)

    return app


def _cached(instance: Instance, key: str, load: Any) -> Any:
    """Read-through cache in Redis, counting hits and misses per cache."""
    cache_name = key.split(":", 1)[0]
    raw = instance.redis.get(f"cache:{key}")
    if raw is not None:
        instance.metrics.cache_hits.labels(cache_name).inc()
        return json.loads(raw)
    instance.metrics.cache_misses.labels(cache_name).inc()
    with instance.service.connection() as conn:
        value = load(conn)
    instance.redis.set(f"cache:{key}", json.dumps(value), ex=CACHE_TTL_S)
    return value
