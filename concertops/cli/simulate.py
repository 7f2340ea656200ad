"""``concertops simulate``: put the booking service under the manual's load scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from concertops.cli import console
from concertops.cli.state import OPTIONS
from concertops.model.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from concertops.simulate.incidents import Outcome

app = typer.Typer(
    help="Drive the booking service: the incident manual's incidents and load scenarios.",
    no_args_is_help=True,
)


class Format(StrEnum):
    table = "table"
    json = "json"


class Until(StrEnum):
    detected = "detected"
    timeout = "timeout"


@app.command()
def incident(
    incident_id: str = typer.Argument(
        ..., metavar="ID", help="The manual's entry to cause: A-1, A-2, A-3, B-1, B-2, B-3 or B-4."
    ),
    until: Until = typer.Option(
        Until.detected,
        help="detected: stop as soon as the runbook's check is not OK; timeout: keep the incident going "
        "for --timeout seconds.",
    ),
    timeout: float = typer.Option(90.0, min=5, max=3600, help="Longest time to wait, in seconds."),
    output_format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Cause one incident of the manual on the reference service, until its runbook detects it.

    Only the incident's own settings take the manual's "current" (legacy) values:

    \b
      A-1  legacy pool and locks, 400 ms seat query, 60 users on one seat at once
      A-2  a schedule sold out, one user retrying it 8 requests at a time
      A-3  max_active_tokens=1, 1 user ACTIVE and 10 WAITING on 5 s polling
      B-1  direct publishing, the broker stopped while 40 users pay (500s)
      B-2  40 holds left HELD past their expiry (expiry messages lost), no sweep
      B-3  pool of 10, 55 idle connections of the app's user (a detached client)
      B-4  drop-when-disconnected producer, broker stopped while 20 users pay

    B-1 and B-4 stop the broker this state directory started (`devstack up`,
    `demo --keep`) and start it again at the end. Settings are written as operator
    "concertops simulate" (`concertops settings history`); A-1's slow seat query stays
    until `concertops settings set db_query_delay_ms=0`, as a slow database would.

    Exit codes: 0 detected (with --until timeout: at some point), 2 not detected
    in time, 3 the incident could not be caused.
    """
    from concertops.simulate.incidents import recipe, simulate

    chosen = recipe(incident_id)
    profile = OPTIONS.load_profile()
    quiet = output_format is Format.json
    told: list[str] = []

    def say(text: str) -> None:
        if quiet:
            return
        if not told:  # the heading comes with the first thing done: a refusal before it stays one line
            console.err().print(f"[bold]{chosen.id}[/] — {chosen.title}: {chosen.story}")
        told.append(text)
        console.err().print(f"  [dim]·[/] {text}")

    with console.err().status(f"causing {chosen.id}…") as status:

        def waiting(elapsed: float, _result: object) -> None:
            status.update(f"waiting for the {chosen.id} check to see it ({elapsed:.0f} s of {timeout:.0f})")

        outcome = simulate(profile, chosen.id, until is Until.detected, timeout, say, waiting)
    if quiet:
        console.out().print_json(json.dumps(outcome.as_json()))
    else:
        _render_outcome(outcome)
    raise typer.Exit(0 if outcome.detected else 2)


def _render_outcome(outcome: Outcome) -> None:
    from concertops.model.evaluate import format_value

    out = console.out()
    if not outcome.detected:
        out.print(
            f"[red]✗ {outcome.incident} not detected[/] after {outcome.seconds:.0f} s "
            f"(its check: {outcome.result.status.name if outcome.result else 'not run'})"
        )
    else:
        out.print(
            f"[green]✓ {outcome.incident} detected[/] after {outcome.seconds_to_detect:.1f} s: "
            f"{outcome.result.verdict if outcome.result else ''}"
        )
    if outcome.result is not None:
        table = console.table("status", "signal", "value", "threshold", "source", edge=False, plain=True)
        for f in outcome.result.findings:
            if f.status.name == "OK":
                continue
            table.add_row(
                f.status.name,
                f.title,
                "—" if f.value is None else format_value(f.value, f.unit),
                "—" if f.threshold is None else format_value(f.threshold, f.unit),
                f.source,
            )
        if table.row_count:
            out.print(table)
    for error in outcome.errors:
        out.print(f"[yellow]load: {error}[/]")
    if outcome.detected:
        out.print(f"next: concertops {outcome.incident.lower().replace('-', '')} --dry-run")


class Scenario(StrEnum):
    reservation_stress = "reservation-stress"
    payment_load = "payment-load"
    queue_spike = "queue-spike"
    concert_endurance = "concert-endurance"


@app.command()
def load(
    scenario: Scenario = typer.Argument(..., help="Which of the manual's four load scenarios to run."),
    users: int = typer.Option(50, min=1, max=2000, help="Concurrent simulated users."),
    duration: float = typer.Option(30.0, min=1, max=3600, help="Seconds of load."),
    url: list[str] = typer.Option(
        None,
        "--url",
        help="Backend base URL; repeat for several instances (default: the profile's backend_urls).",
    ),
    schedule: int | None = typer.Option(None, help="Schedule to book (default: the first one listed)."),
    output_format: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Run one scenario headless (Locust) and report throughput, latency percentiles and the status mix.

    The business error rate counts only 5xx and transport failures: 409 after a sell-out is a normal
    outcome (runbook A-2), shown beside the naive "any 4xx/5xx" rate that a k6 threshold would use.
    """
    urls = list(url or OPTIONS.load_profile().backend_urls)
    if not urls:
        raise ConfigError(
            "no backend URL to load", "pass --url http://HOST:PORT or set CONCERTOPS_BACKEND_URLS"
        )
    try:
        import locust  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        raise UsageError("the load scenarios need Locust", "pip install 'concertops[load]'") from None
    cmd = [
        sys.executable,
        "-m",
        "concertops.simulate.load",
        scenario.value,
        "--users",
        str(users),
        "--duration",
        str(duration),
    ] + [arg for u in urls for arg in ("--url", u)]
    if schedule is not None:
        cmd += ["--schedule", str(schedule)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _progress(proc, duration, f"{scenario.value}: {users} users on {len(urls)} instance(s)")
    out, err = proc.communicate()
    if proc.returncode != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"load run failed: {last}", "check the backend URL and that the service is up")
    result = json.loads(out)
    if output_format is Format.json:
        console.out().print_json(json.dumps(result))
        return
    _render(result)


def _progress(proc: subprocess.Popen[str], duration: float, label: str) -> None:
    with console.progress(console.err(), counted=False) as progress:
        task = progress.add_task(label, total=duration)
        started = time.monotonic()
        while proc.poll() is None:
            progress.update(task, completed=min(duration, time.monotonic() - started))
            time.sleep(0.2)


def _render(r: dict[str, object]) -> None:
    table = console.table(
        "",
        "",
        title=f"{r['scenario']} — {r['users']} users, {r['instances']} instance(s), {r['duration_s']} s",
        header=False,
    )
    rows = [
        ("requests", f"{r['requests']}  ({r['throughput_rps']} req/s)"),
        ("latency p50 / p95 / p99", f"{r['p50_ms']} / {r['p95_ms']} / {r['p99_ms']} ms"),
        ("status mix", ", ".join(f"{k}: {v}" for k, v in dict(r["statuses"]).items())),  # type: ignore[call-overload]
        ("409 conflicts (business outcome)", str(r["conflicts_409"])),
        ("business error rate (5xx, transport)", f"{float(r['business_error_rate']):.2%}"),  # type: ignore[arg-type]
        ("naive failed rate (any 4xx/5xx)", f"{float(r['http_req_failed_rate']):.2%}"),  # type: ignore[arg-type]
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.out().print(table)
