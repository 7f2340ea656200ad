"""``concertops exporter``: serve the runbooks' signals, measured from the stores, to Prometheus."""

from __future__ import annotations

import typer

from concertops.cli import console
from concertops.cli.state import OPTIONS
from concertops.model.errors import UsageError

HELP = """Serve every runbook signal the service map can measure from the stores, for Prometheus.

For a service that exports no metrics. Its database, Redis, broker and HTTP API are measured in a loop,
every --interval seconds, each source within its own deadline. A scrape never runs a query.

Series: concertops_signal_value and concertops_signal_status {runbook, signal};
concertops_runbook_status {runbook}; concertops_source_up and concertops_source_duration_seconds {source};
the manual's queue_waiting_tokens and kafka_consumer_lag {group, topic}.

alerts/concertops-exporter.yml pages on them with the runbook pages' thresholds.
A stale or failed source serves concertops_source_up 0 and UNKNOWN, never a value.
SIGTERM stops it within 2 s.

Examples:

  concertops --profile production exporter --listen 0.0.0.0:9464

Under systemd, /etc/systemd/system/concertops-exporter.service:

  [Service]
  Environment=CONCERTOPS_CONFIG=/etc/concertops/concertops.yaml
  ExecStart=/opt/concertops/bin/concertops --profile production exporter --listen 0.0.0.0:9464
  Restart=always
  DynamicUser=yes

In a container, from a wheel of this checkout (pip wheel --no-deps -w dist .):

  docker run -p 9464:9464 -v "$PWD/dist:/dist" -e CONCERTOPS_DATABASE_URL \\
    -e CONCERTOPS_SERVICE_MAP=step10 python:3.11-slim \\
    sh -c "pip install /dist/concertops-*.whl && concertops exporter --listen 0.0.0.0:9464"
"""


def exporter(
    listen: str = typer.Option("127.0.0.1:9464", "--listen", help="host:port to serve /metrics on."),
    interval: float = typer.Option(
        15.0, "--interval", min=1, max=3600, help="Seconds between two measurements of each source."
    ),
    deadline: float = typer.Option(
        0.0,
        "--deadline",
        min=0,
        max=600,
        help="Seconds one source's cycle may take (default: 0.8 of the interval).",
    ),
    register_devstack: bool = typer.Option(
        False, "--register-devstack", help="Announce this exporter to the local devstack's Prometheus."
    ),
) -> None:
    host, port = _address(listen)
    from concertops.engine.exporter_server import serve

    profile = OPTIONS.load_profile()
    served = serve(profile, host, port, interval, deadline or 0.8 * interval, register_devstack)
    console.err().print(served, markup=False)


exporter.__doc__ = HELP


def _address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {listen!r} is not host:port", "e.g. --listen 127.0.0.1:9464")
    return host.strip("[]"), int(port)
