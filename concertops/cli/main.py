"""The ``concertops`` entry point: global options, command groups, and the one error-to-exit-code mapping.

Exit codes follow the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Usage errors are
3 too (click's default of 2 would read as CRITICAL to cron and monitoring).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import NoReturn

import typer

from concertops.cli import (
    audit_cmd,
    backend,
    check,
    config_cmd,
    demo,
    devstack,
    doctor,
    exporter_cmd,
    map_cmd,
    runbooks_cmd,
    settings_cmd,
    simulate,
    state,
    state_cmd,
    triage,
)
from concertops.cli.runbook_group import RunbookGroup
from concertops.cli.state import OPTIONS
from concertops.model.errors import UNKNOWN

app = typer.Typer(
    name="concertops",
    help=(
        "Incident runbooks for the concert-booking service: detect through Prometheus and SQL, "
        "remediate safely, verify.\n\n"
        "Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (unreachable source, bad input, usage error)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=RunbookGroup,
)
app.add_typer(devstack.app, name="devstack")
app.add_typer(backend.app, name="backend")
app.add_typer(config_cmd.app, name="config")
app.add_typer(simulate.app, name="simulate")
app.command("doctor")(doctor.doctor)
app.add_typer(map_cmd.app, name="map")
app.command("check")(check.check)
app.add_typer(runbooks_cmd.app, name="runbooks")
app.add_typer(settings_cmd.app, name="settings")
app.command("audit")(audit_cmd.audit)
app.add_typer(state_cmd.app, name="state")
app.command("exporter", help=exporter_cmd.HELP)(exporter_cmd.exporter)
app.command("triage")(triage.triage)
app.command("demo")(demo.demo)
# …and one command per runbook page, so on-call muscle memory is `concertops b2` (see RunbookGroup).


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        sys.stdout.write(f"concertops {version('concertops')}\n")
        raise typer.Exit(0)


@app.callback()
def main(
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="Config file (default: $CONCERTOPS_CONFIG, ./concertops.yaml, then ~/.config/concertops/).",
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        "-p",
        help="Profile in the config file (default: $CONCERTOPS_PROFILE or the file's default).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
    ),
) -> None:
    OPTIONS.config, OPTIONS.profile, OPTIONS.debug = config, profile, debug


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; every failure becomes one line on stderr."""
    from concertops.model.errors import ConcertopsError
    from concertops.redact import redact_text

    state.begin(state.process_start() if argv is None else time.monotonic())
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="concertops", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
        if isinstance(exc.__cause__, KeyboardInterrupt):  # typer's own Ctrl-C exit (130): ours is 3
            _error("interrupted")
            code = UNKNOWN
    except typer.Abort:
        _error("aborted")
        code = UNKNOWN
    except ConcertopsError as exc:
        _error(redact_text(exc.one_line()))
        code = exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        code = UNKNOWN
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
        elif type(exc).__module__.startswith("sqlalchemy"):
            # The store did not answer (or lacks a table): one line with the fix, not SQLAlchemy's two
            # lines and web link.
            _error(redact_text(_store_error(exc)))
        else:
            if OPTIONS.debug or "--debug" in args:
                import traceback

                sys.stderr.write(redact_text(traceback.format_exc()))
            _error(
                redact_text(f"unexpected {type(exc).__name__}: {exc}")
                + " (run with --debug for the traceback)"
            )
        code = UNKNOWN
    code = int(code or 0) if isinstance(code, int | None) else 0
    if argv is None:
        _leave(code)
    return code


def _leave(code: int) -> NoReturn:
    """End the process now that its output is written. Probe work abandoned at its deadline (a socket
    that never answers, a Kafka client still retrying) and the interpreter's teardown would otherwise hold
    a cron check past its --timeout; nothing of ours is left unsaved by then (stores commit, files are
    written atomically), so the streams are flushed and the process exits without the teardown."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A reader gone (`| head`) or a closed stream: nothing is left to tell it.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _store_error(exc: Exception) -> str:
    from concertops.redact import error_line

    cause = getattr(exc, "orig", None) or exc
    return (
        f"the database did not answer as expected: {type(cause).__name__}: {error_line(cause)} — "
        + _store_fix()
    )


def _store_fix() -> str:
    """Migrating is the fix on the twin only: on a mapped service it would create the twin's tables there."""
    from concertops.cli.state import OPTIONS
    from concertops.contract import service_map

    try:
        reference = service_map.for_profile(OPTIONS.load_profile()).acts.state_tables
    except Exception:  # the profile or the map is what failed: name no fix that writes anything
        reference = False
    if reference:
        return "check database_url (concertops doctor); a missing table needs `concertops backend migrate`"
    return "check database_url and the service map (concertops doctor lists every gap)"


def _is_usage_error(exc: Exception) -> bool:
    """Click-style parse errors (bad option, missing argument): they know how to show themselves."""
    return callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code")


def _error(message: str) -> None:
    sys.stderr.write(f"concertops: error: {message}\n")
