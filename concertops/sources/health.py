"""Can each configured source be reached, and what is it? (``concertops doctor``)

Every check is bounded by its own timeout and runs in parallel with the others; a failure carries the fix.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from concertops.config import Profile
from concertops.redact import redact_text, redact_url

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class SourceCheck:
    source: str
    target: str
    ok: bool
    detail: str
    fix: str = ""
    duration_s: float = 0.0


def _database(url: str) -> str:
    import sqlalchemy as sa

    from concertops.sources.database import open_engine

    engine = open_engine(url, TIMEOUT_S, connections=1, read_timeout_s=TIMEOUT_S, pool_wait_s=TIMEOUT_S)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                version = conn.execute(sa.text("SELECT sqlite_version()")).scalar()
                return f"SQLite {version}"
            return f"{engine.dialect.name} {conn.execute(sa.text('SELECT VERSION()')).scalar()}"
    finally:
        engine.dispose()


def _redis(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    client.ping()
    return f"Redis {client.info('server').get('redis_version', '?')}"


def _kafka(servers: str) -> str:
    from confluent_kafka.admin import AdminClient

    from concertops.contract.names import TOPICS

    # log_level 0: the client's reconnect chatter would flood the terminal; the outcome is reported here.
    admin = AdminClient(
        {"bootstrap.servers": servers, "socket.timeout.ms": int(TIMEOUT_S * 1000), "log_level": 0}
    )
    meta = admin.list_topics(timeout=TIMEOUT_S)
    missing = [t for t in TOPICS if t not in meta.topics]
    topics = f"topics missing: {', '.join(missing)}" if missing else "all service topics present"
    return f"{len(meta.brokers)} broker(s); {topics}"


def _http_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
        body = json.load(resp)
    return body if isinstance(body, dict) else {}


def _prometheus(url: str) -> str:
    from concertops.sources.prometheus import prometheus

    return f"Prometheus {prometheus(url, TIMEOUT_S).version()}"


def _metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
        text = resp.read().decode("utf-8", errors="replace")
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return f"{samples} samples"


def _backend(url: str) -> str:
    body = _http_json(f"{url.rstrip('/')}/healthz")
    return ", ".join(f"{k} {v}" for k, v in body.items())


def _probe_path(path: str) -> Callable[[str], str]:
    """A backend asked the way the service map's availability probe asks it: a service needs no
    ``/healthz`` of concertops's making to be healthy."""

    def probe(url: str) -> str:
        import urllib.error

        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}{path}", timeout=TIMEOUT_S) as resp:
                status = resp.status
        except urllib.error.HTTPError as answered:
            # It answered, so it is up; a 4xx/5xx here means a wrong path (or the service's own failure).
            raise ConnectionError(f"GET {path} answered {answered.code}") from None
        return f"GET {path} answered {status} in {(time.monotonic() - started) * 1000:.0f} ms"

    return probe


FIXES = {
    "database": "check database_url / CONCERTOPS_DATABASE_URL, and that the server accepts connections",
    "redis": "check redis_url / CONCERTOPS_REDIS_URL",
    "kafka": "check kafka_bootstrap_servers / CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS and the broker",
    "prometheus": "check prometheus_url / CONCERTOPS_PROMETHEUS_URL, or set it empty to scrape directly",
    "metrics": "check metrics_urls / CONCERTOPS_METRICS_URLS (each a /metrics endpoint)",
    "backend": "check backend_urls / CONCERTOPS_BACKEND_URLS and that the service is up",
}


def _planned(profile: Profile) -> list[tuple[str, str, Callable[[str], str]]]:
    checks: list[tuple[str, str, Callable[[str], str]]] = []
    if profile.database_url:
        checks.append(("database", profile.database_url, _database))
    if profile.redis_url:
        checks.append(("redis", profile.redis_url, _redis))
    if profile.kafka_bootstrap_servers:
        checks.append(("kafka", profile.kafka_bootstrap_servers, _kafka))
    if profile.prometheus_url:
        checks.append(("prometheus", profile.prometheus_url, _prometheus))
    checks += [("metrics", url, _metrics) for url in profile.metrics_urls]
    if profile.backend_urls:
        from concertops.contract import service_map

        availability = service_map.for_profile(profile).probe("availability")
        backend = _probe_path(availability.path) if availability is not None else _backend
        checks += [("backend", url, backend) for url in profile.backend_urls]
    return checks


def _backend_fix(exc: BaseException) -> str:
    """A wrong URL told from a service that is down, where the error says which."""
    import socket

    reason = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve: check backend_urls / CONCERTOPS_BACKEND_URLS"
    if isinstance(reason, ConnectionRefusedError) or isinstance(exc, ConnectionRefusedError):
        return (
            "nothing listens there: the service is down on this backend, or the port in backend_urls is wrong"
        )
    return FIXES["backend"]


def _run(source: str, target: str, probe: Callable[[str], str]) -> SourceCheck:
    started = time.monotonic()
    try:
        detail = probe(target)
        ok, fix = True, ""
    except Exception as exc:  # any failure of a source is the finding itself
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = _backend_fix(exc) if source == "backend" else FIXES[source]
        detail, ok = redact_text(f"{type(exc).__name__}: {message}")[:300], False
    return SourceCheck(source, redact_url(target), ok, detail, fix, round(time.monotonic() - started, 3))


def check_sources(profile: Profile) -> list[SourceCheck]:
    """Every configured source, checked in parallel; an unconfigured one is simply not listed."""
    planned = _planned(profile)
    if not planned:
        return []
    with ThreadPoolExecutor(max_workers=len(planned)) as pool:
        return list(pool.map(lambda check: _run(*check), planned))
