"""Bad input through the real binary: one line, exit 3, no traceback, no password."""

from __future__ import annotations

from pathlib import Path

from cli_runner import CliRunner


def test_help_lists_commands_and_exit_codes(cli: CliRunner) -> None:
    done = cli("--help")
    assert done.returncode == 0
    assert "devstack" in done.stdout
    assert "3 UNKNOWN" in done.stdout


def test_unknown_command_is_a_usage_error_with_exit_3(cli: CliRunner) -> None:
    done = cli("no-such-command")
    assert done.returncode == 3
    assert "No such command" in done.stderr


def test_unknown_profile_is_one_line(cli: CliRunner) -> None:
    done = cli("--profile", "prod", "config", "show")
    assert done.returncode == 3
    assert done.stderr.strip().count("\n") == 0
    assert "unknown profile 'prod'" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_config_names_file_and_line(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles:\n  a: [\n")
    done = cli("--config", str(bad), "config", "show")
    assert done.returncode == 3
    assert f"config file {bad} is not valid YAML at line" in done.stderr
    assert "Traceback" not in done.stderr


def test_password_never_printed(cli: CliRunner) -> None:
    done = cli("config", "show", env={"CONCERTOPS_DATABASE_URL": "mysql+pymysql://app:hunter2@db/x"})
    assert done.returncode == 0
    assert "hunter2" not in done.stdout + done.stderr
    assert "app:***@db" in done.stdout


def test_simulate_load_without_a_backend_url_says_how_to_give_one(cli: CliRunner) -> None:
    done = cli("simulate", "load", "reservation-stress", "--duration", "1")
    assert done.returncode == 3
    assert "no backend URL" in done.stderr and "--url" in done.stderr


def test_simulate_load_rejects_an_unknown_scenario(cli: CliRunner) -> None:
    done = cli("simulate", "load", "black-friday")
    assert done.returncode == 3
    assert "black-friday" in done.stderr


def test_runbook_help_shows_each_option_default_and_range_as_the_page_has_them(cli: CliRunner) -> None:
    done = cli("b2", "--help", env={"COLUMNS": "250"})
    assert done.returncode == 0
    line = next(row for row in done.stdout.splitlines() if "--batch-size" in row)
    assert "1<=x<=10000" in line and "(page: 5000)" in line, line
    tokens = next(
        row for row in cli("a1", "--help", env={"COLUMNS": "250"}).stdout.splitlines() if "--tokens" in row
    )
    assert "(page: 20; limit ≥ 10)" in tokens, tokens


def test_an_option_out_of_the_models_range_is_a_usage_error_with_exit_3(cli: CliRunner) -> None:
    done = cli("b2", "--apply", "--batch-size", "0")
    assert done.returncode == 3
    assert "--batch-size" in done.stderr and "Traceback" not in done.stderr


def test_version_is_printed(cli: CliRunner) -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("concertops ")


def test_a_database_that_does_not_answer_is_one_line_for_audit_and_settings(cli: CliRunner) -> None:
    for command in (("audit",), ("settings", "list")):
        done = cli(*command, env={"CONCERTOPS_DATABASE_URL": "mysql+pymysql://app:S3cret@127.0.0.1:9/x"})
        assert done.returncode == 3, command
        assert done.stderr.count("\n") == 1 and "database_url" in done.stderr, done.stderr
        assert "sqlalche.me" not in done.stderr and "S3cret" not in done.stderr


def test_an_audit_window_beyond_the_calendar_is_one_line(cli: CliRunner) -> None:
    done = cli("audit", "--since", "999999999999h")
    assert done.returncode == 3 and "shorter duration" in done.stderr and "Traceback" not in done.stderr
