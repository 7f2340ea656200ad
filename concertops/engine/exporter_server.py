"""Run the exporter: its loops, the /metrics endpoint, and a stop on SIGTERM or Ctrl-C within 2 s."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from concertops.config import Profile
from concertops.engine.exporter import Collector, Exporter
from concertops.model.errors import UsageError

STOP_WITHIN_S = 2.0


def serve(
    profile: Profile, host: str, port: int, interval_s: float, deadline_s: float, register_devstack: bool
) -> str:
    """Serves until SIGTERM/SIGINT; returns the closing line."""
    from prometheus_client import CollectorRegistry, start_http_server

    from concertops.runbooks.registry import all_runbooks

    exporter = Exporter(profile, all_runbooks(), interval_s, min(deadline_s, interval_s))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(exporter))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --listen"
        ) from None
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    name = f"exporter-{port}"
    if register_devstack:
        from concertops.contract.discovery import EXPORTERS, register_target, state_dir

        register_target(state_dir(), name, f"{host}:{port}", {"profile": profile.name}, kind=EXPORTERS)
    import sys

    sources = ", ".join(exporter.loops) or "none"
    sys.stderr.write(
        f"concertops exporter: serving http://{host}:{port}/metrics for profile {profile.name} "
        f"(map {exporter.shape.name}; sources: {sources}; every {interval_s:g} s)\n"
    )
    sys.stderr.flush()
    exporter.start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        started = time.monotonic()
        if register_devstack:
            from concertops.contract.discovery import EXPORTERS, state_dir, unregister_target

            unregister_target(state_dir(), name, kind=EXPORTERS)
        _shutdown(server)
        exporter.close(wait_s=max(0.1, STOP_WITHIN_S - 0.5 - (time.monotonic() - started)))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return "concertops exporter: stopped"


def _shutdown(server: Any) -> None:
    # shutdown() waits for serve_forever's poll (0.5 s): within the 2 s budget.
    server.shutdown()
    server.server_close()
