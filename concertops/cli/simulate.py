"""``concertops simulate``: put the booking service under the manual's load scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from enum import StrEnum

import typer

from concertops.cli import console
from concertops.cli.state import OPTIONS
from concertops.errors import ConfigError, UsageError

app = typer.Typer(
    help="Drive the booking service: the incident manual's load scenarios.", no_args_is_help=True
)


class Scenario(StrEnum):
    reservation_stress = "reservation-stress"
    payment_load = "payment-load"
    queue_spike = "queue-spike"
    concert_endurance = "concert-endurance"


class Format(StrEnum):
    table = "table"
    json = "json"


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
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        console=console.err(),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=duration)
        started = time.monotonic()
        while proc.poll() is None:
            progress.update(task, completed=min(duration, time.monotonic() - started))
            time.sleep(0.2)


def _render(r: dict[str, object]) -> None:
    from rich.table import Table

    table = Table(
        title=f"{r['scenario']} — {r['users']} users, {r['instances']} instance(s), {r['duration_s']} s",
        show_header=False,
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
