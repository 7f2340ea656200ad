from __future__ import annotations

from pathlib import Path

import pytest

from concertops.config import load_profile
from concertops.model.errors import ConfigError

CONFIG = """
default_profile: staging
profiles:
  staging:
    database_url: mysql+pymysql://app:hunter2@db.staging:3306/booking
    redis_url: redis://cache.staging:6379/0
    kafka_bootstrap_servers: kafka.staging:9092
    prometheus_url: http://prom.staging:9090
  production:
    database_url: mysql+pymysql://app:pw@db.prod/booking
    prometheus_url: ""
    metrics_urls: [http://a:8000/metrics, http://b:8000/metrics]
    protected: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "concertops.yaml"
    path.write_text(text)
    return path


def test_builtin_local_profile_without_any_file() -> None:
    profile = load_profile(env={})
    assert profile.name == "local"
    assert profile.database_url == "mysql+pymysql://root@127.0.0.1:3306/concertops"
    assert profile.prometheus_url == "http://127.0.0.1:19090"
    assert profile.source == "built-in"


def test_file_in_current_directory_and_default_profile(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    profile = load_profile(env={})
    assert profile.name == "staging"
    assert profile.kafka_bootstrap_servers == "kafka.staging:9092"
    assert not profile.protected


def test_profile_from_option_beats_environment(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    profile = load_profile(str(path), "production", env={"CONCERTOPS_PROFILE": "staging"})
    assert profile.name == "production"
    assert profile.protected
    assert profile.metrics_urls == ("http://a:8000/metrics", "http://b:8000/metrics")
    assert profile.prometheus_url == ""


def test_profile_from_environment(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    assert load_profile(env={"CONCERTOPS_PROFILE": "production"}).name == "production"


def test_xdg_config_dir_is_the_last_resort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "concertops").mkdir(parents=True)
    (xdg / "concertops" / "concertops.yaml").write_text(CONFIG)
    assert load_profile(env={"XDG_CONFIG_HOME": str(xdg)}).name == "staging"


def test_environment_overrides_every_field(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    profile = load_profile(
        env={
            "CONCERTOPS_DATABASE_URL": "sqlite:///x.db",
            "CONCERTOPS_METRICS_URLS": "http://x/metrics, http://y/metrics",
            "CONCERTOPS_PROTECTED": "yes",
        }
    )
    assert profile.database_url == "sqlite:///x.db"
    assert profile.metrics_urls == ("http://x/metrics", "http://y/metrics")
    assert profile.protected is True
    assert profile.overridden == ("database_url", "metrics_urls", "protected")


def test_environment_alone_is_enough() -> None:
    profile = load_profile(
        env={"CONCERTOPS_DATABASE_URL": "sqlite:///only.db", "CONCERTOPS_PROMETHEUS_URL": ""}
    )
    assert profile.database_url == "sqlite:///only.db"
    assert profile.prometheus_url == ""


def test_describe_masks_passwords(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    described = load_profile(env={}).describe()
    assert "hunter2" not in str(described)
    assert described["database_url"] == "mysql+pymysql://app:***@db.staging:3306/booking"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles: [1, 2", "not valid YAML at line"),
        ("- a list", "must be a mapping"),
        ("other: 1", "has no 'profiles' mapping"),
        ("profiles:\n  p:\n    databse_url: x", "unknown key 'databse_url'"),
        ("profiles:\n  p:\n    protected: maybe", "'protected' must be true or false"),
        ("profiles:\n  p:\n    metrics_urls: 3", "must be a list of URLs"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_profile(env={})


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    with pytest.raises(ConfigError) as err:
        load_profile(profile="prod", env={})
    assert "unknown profile 'prod'" in str(err.value)
    assert err.value.hint == "use one of: production, staging"


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_profile("/nonexistent/concertops.yaml", env={})
    with pytest.raises(ConfigError, match=r"\$CONCERTOPS_CONFIG"):
        load_profile(env={"CONCERTOPS_CONFIG": "/nonexistent.yaml"})


def test_tls_defaults_to_prefer_and_takes_only_its_modes() -> None:
    import pytest

    from concertops.model.errors import ConfigError

    assert load_profile(env={}).tls == "prefer"
    assert load_profile(env={"CONCERTOPS_TLS": "require"}).tls == "require"
    with pytest.raises(ConfigError):
        load_profile(env={"CONCERTOPS_TLS": "sometimes"})


def test_a_profile_overrides_a_deploy_constant_of_its_map(tmp_path: Path) -> None:
    from concertops.contract import service_map

    path = tmp_path / "concertops.yaml"
    path.write_text(
        "profiles:\n  prod:\n    service_map: step10\n    deploy_constants: {max_active_tokens: 100}\n"
    )
    profile = load_profile(str(path), "prod", env={})
    shape = service_map.for_profile(profile)
    assert shape.deploy_constants["max_active_tokens"].value == 100
    assert "the profile's deploy_constants (the map: 50" in shape.deploy_constants["max_active_tokens"].where
    assert shape.deploy_constants["db_pool_size"].value == 10


def test_deploy_constants_that_are_not_a_mapping_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "concertops.yaml"
    path.write_text("profiles:\n  prod:\n    deploy_constants: [max_active_tokens]\n")
    with pytest.raises(ConfigError, match="'deploy_constants' must map a constant's name to its value"):
        load_profile(str(path), "prod", env={})
