"""Where concertops finds the service: profiles from ``concertops.yaml`` plus environment overrides.

Search order for the file: ``--config``, ``$CONCERTOPS_CONFIG``, ``./concertops.yaml``, then
``$XDG_CONFIG_HOME/concertops/concertops.yaml``. With no file at all, the built-in ``local`` profile
points at the devstack's default ports, and the ``CONCERTOPS_*`` variables override any profile, so a
cron job can run with environment variables alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from concertops.contract.discovery import devstack_port
from concertops.model.errors import ConfigError
from concertops.redact import redact_text, redact_url, remember

FILE_NAME = "concertops.yaml"
DEFAULT_PROFILE = "local"

# The built-in profile's fields besides the devstack's addresses (``local_defaults``).
LOCAL_DEFAULTS: dict[str, Any] = {
    "metrics_urls": [],
    "backend_urls": [],
    "protected": False,
    # The service's shape (concertops.contract.service_map): a built-in name or a map file's path.
    "service_map": "reference",
    # Where concertops keeps its audit and lock holders (concertops.engine.state_store); None: the default.
    "state_url": None,
    # A command template that carries out a deploy-only change (concertops.engine.handoff); None: print it.
    "handoff_hook": None,
    # TLS to MySQL: prefer (when the server offers it), require, or off.
    "tls": "prefer",
    # Deploy constants that override the service map's (a deploy changed one: ``max_active_tokens: 100``).
    "deploy_constants": {},
}
TLS_MODES = ("prefer", "require", "off")
_ADDRESS_FIELDS = ("database_url", "redis_url", "kafka_bootstrap_servers", "prometheus_url")


def local_defaults(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The built-in ``local`` profile: the devstack's ports (chosen away from the services' usual ones, so a
    developer's own Prometheus or Kafka is never mistaken for ours; moved by its port offset)."""
    host = "127.0.0.1"
    return {
        "database_url": f"mysql+pymysql://root@{host}:{devstack_port('mariadb', env)}/concertops",
        "redis_url": f"redis://{host}:{devstack_port('redis', env)}/0",
        "kafka_bootstrap_servers": f"{host}:{devstack_port('kafka', env)}",
        "prometheus_url": f"http://{host}:{devstack_port('prometheus', env)}",
        **LOCAL_DEFAULTS,
    }


ENV_OVERRIDES: dict[str, str] = {
    "CONCERTOPS_DATABASE_URL": "database_url",
    "CONCERTOPS_REDIS_URL": "redis_url",
    "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": "kafka_bootstrap_servers",
    "CONCERTOPS_PROMETHEUS_URL": "prometheus_url",
    "CONCERTOPS_METRICS_URLS": "metrics_urls",
    "CONCERTOPS_BACKEND_URLS": "backend_urls",
    "CONCERTOPS_PROTECTED": "protected",
    "CONCERTOPS_SERVICE_MAP": "service_map",
    "CONCERTOPS_STATE_URL": "state_url",
    "CONCERTOPS_HANDOFF_HOOK": "handoff_hook",
    "CONCERTOPS_TLS": "tls",
}
_LIST_FIELDS = {"metrics_urls", "backend_urls"}
_KNOWN_FIELDS = set(LOCAL_DEFAULTS) | set(_ADDRESS_FIELDS)


@dataclass(frozen=True)
class Profile:
    """Everything a command needs to reach one deployment of the service."""

    name: str
    database_url: str | None = None
    redis_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    # Empty string means "no Prometheus": signals are read by scraping ``metrics_urls`` directly.
    prometheus_url: str | None = None
    metrics_urls: tuple[str, ...] = ()
    backend_urls: tuple[str, ...] = ()
    protected: bool = False
    service_map: str | None = None  # None: the default map (reference)
    state_url: str | None = None  # None: concertops.engine.state_store decides
    handoff_hook: str | None = None  # None: a deploy-only change is printed and handed over
    tls: str = "prefer"  # to MySQL: prefer | require | off
    # (name, value) pairs that override the map's deploy constants (concertops.contract.service_map)
    deploy_constants: tuple[tuple[str, bool | int | float | str], ...] = ()
    source: str = "built-in"
    overridden: tuple[str, ...] = field(default=())

    def secrets(self) -> list[str]:
        """Every password the profile holds (in its URLs, a URL's query included): masked in any text
        concertops stores or prints, wherever an operator pastes one."""
        from urllib.parse import parse_qs, unquote, urlsplit

        found: list[str] = []
        for url in (
            self.database_url,
            self.redis_url,
            self.prometheus_url,
            self.state_url,
            *self.metrics_urls,
            *self.backend_urls,
        ):
            if not url:
                continue
            try:
                parts = urlsplit(url)
                found += [parts.password or "", unquote(parts.password or "")]  # as written, and decoded
                query = parse_qs(parts.query)
            except ValueError:
                continue
            found += [v for key in ("password", "passwd", "pwd") for v in query.get(key, [])]
        return [f for f in found if f]

    def describe(self) -> dict[str, Any]:
        """The profile as shown to a user: every URL with its password masked."""
        return {
            "profile": self.name,
            "source": self.source,
            "database_url": redact_url(self.database_url),
            "redis_url": redact_url(self.redis_url),
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers or "",
            "prometheus_url": redact_url(self.prometheus_url),
            "metrics_urls": [redact_url(u) for u in self.metrics_urls],
            "backend_urls": [redact_url(u) for u in self.backend_urls],
            "protected": self.protected,
            "service_map": self.service_map or "reference",
            "state_url": redact_url(self.state_url) if self.state_url else "(default)",
            "handoff_hook": redact_text(self.handoff_hook) if self.handoff_hook else "(none: printed)",
            "tls": self.tls,
            "deploy_constants": dict(self.deploy_constants),
            "overridden_by_env": list(self.overridden),
        }


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read, or None to use the built-in profile."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} not found", "check the --config path")
        return path
    if env.get("CONCERTOPS_CONFIG"):
        path = Path(env["CONCERTOPS_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config file {path} (from $CONCERTOPS_CONFIG) not found",
                "fix or unset CONCERTOPS_CONFIG",
            )
        return path
    local = Path.cwd() / FILE_NAME
    if local.is_file():
        return local
    xdg = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "concertops" / FILE_NAME
    return xdg if xdg.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # lazy: most invocations never read a file

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}", "check its permissions") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}", "fix the syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping with a 'profiles' key", "see README")
    return data


def _coerce(name: str, value: Any, origin: str) -> Any:
    if name in _LIST_FIELDS:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{origin}: '{name}' must be a list of URLs", "write one URL per list item")
    if name == "protected":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "0", "false", "no"}:
            return value.lower() in {"1", "true", "yes"}
        raise ConfigError(f"{origin}: 'protected' must be true or false", "write protected: true")
    if name == "deploy_constants":
        fine = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, bool | int | float | str) for k, v in value.items()
        )
        if not fine:
            raise ConfigError(
                f"{origin}: 'deploy_constants' must map a constant's name to its value",
                "write e.g. deploy_constants: {max_active_tokens: 100}",
            )
        return tuple(sorted(value.items()))
    if name == "tls":
        if value not in TLS_MODES:
            raise ConfigError(f"{origin}: 'tls' is {value!r}", f"write one of: {', '.join(TLS_MODES)}")
        return value
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise ConfigError(f"{origin}: '{name}' must be a string", "quote the value")
    return str(value)


def load_profile(
    config: str | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Profile:
    """Resolve the profile to use, applying ``CONCERTOPS_*`` overrides last."""
    env = os.environ if env is None else env
    wanted = profile or env.get("CONCERTOPS_PROFILE") or None
    path = find_config_file(config, env)

    if path is None:
        if wanted not in (None, DEFAULT_PROFILE):
            raise ConfigError(
                f"unknown profile '{wanted}': no config file found",
                f"create {FILE_NAME} with a 'profiles' section or pass --config",
            )
        base = Profile(name=DEFAULT_PROFILE, **_from_mapping(local_defaults(env), "built-in profile"))
        # Locally, the instances `backend serve` announced to the devstack's Prometheus are also the
        # endpoints to scrape directly when that Prometheus is down.
        base = replace(base, metrics_urls=_devstack_metrics_urls())
    else:
        data = _read_yaml(path)
        profiles = data.get("profiles")
        if not isinstance(profiles, dict) or not profiles:
            raise ConfigError(f"config file {path} has no 'profiles' mapping", "add profiles: {name: {...}}")
        name = wanted or data.get("default_profile") or next(iter(profiles))
        if name not in profiles:
            known = ", ".join(sorted(profiles))
            raise ConfigError(f"unknown profile '{name}' in {path}", f"use one of: {known}")
        raw = profiles[name] or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"profile '{name}' in {path} must be a mapping", "see README")
        unknown = set(raw) - _KNOWN_FIELDS
        if unknown:
            raise ConfigError(
                f"profile '{name}' in {path} has unknown key '{sorted(unknown)[0]}'",
                f"known keys: {', '.join(sorted(_KNOWN_FIELDS))}",
            )
        base = Profile(name=name, source=str(path), **_from_mapping(raw, f"profile '{name}' in {path}"))

    overrides: dict[str, Any] = {}
    for var, attr in ENV_OVERRIDES.items():
        if var in env:
            overrides[attr] = _coerce(attr, env[var], f"${var}")
    if overrides:
        base = replace(base, overridden=tuple(sorted(overrides)), **overrides)
    remember(*base.secrets())
    return base


def _from_mapping(raw: Mapping[str, Any], origin: str) -> dict[str, Any]:
    return {key: _coerce(key, value, origin) for key, value in raw.items() if key in _KNOWN_FIELDS}


def _devstack_metrics_urls() -> tuple[str, ...]:
    from concertops.contract.discovery import registered_targets, state_dir

    return tuple(f"http://{target}/metrics" for target in registered_targets(state_dir()))
