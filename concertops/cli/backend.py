"""``concertops backend``: migrate, seed and run the reference booking service.

This group is the service's launcher, so it is the one CLI module allowed to import ``concertops.booking``
(lazily, inside each command); runbooks reach the service only through its database, Redis, Kafka,
Prometheus and HTTP.
"""

from __future__ import annotations

import signal
import threading

import typer

from concertops.cli import console
from concertops.cli.state import OPTIONS
from concertops.model.errors import ConfigError

app = typer.Typer(help="Migrate, seed and run the reference booking service.", no_args_is_help=True)


def _database_url() -> str:
    url = OPTIONS.load_profile().database_url
    if not url:
        raise ConfigError("no database URL in the profile", "set database_url or CONCERTOPS_DATABASE_URL")
    return url


@app.command()
def migrate() -> None:
    """Bring the profile's database to the current schema (Alembic)."""
    from concertops.booking.db import make_engine
    from concertops.booking.schema_admin import migrate as run_migrations

    engine = make_engine(_database_url(), pool_size=1)
    revision = run_migrations(engine)
    console.out().print(f"database at schema revision [bold]{revision}[/]")


@app.command()
def seed(
    concerts: int = typer.Option(1, min=1, max=1000, help="Concerts to create."),
    schedules: int = typer.Option(1, min=1, max=100, help="Schedules per concert."),
    seats: int = typer.Option(50, min=1, max=100_000, help="Seats per schedule."),
) -> None:
    """Create concerts, schedules and seats to book."""
    from concertops.booking.db import make_engine
    from concertops.contract.seeding import seed as run_seed

    seeded = run_seed(make_engine(_database_url(), pool_size=1), concerts, schedules, seats)
    console.out().print(
        f"seeded {len(seeded.concert_ids)} concert(s), schedules {seeded.schedule_ids}, {seeded.seats} seats"
    )


@app.command()
def serve(
    instances: int = typer.Option(
        1, "--instances", "-n", min=1, max=16, help="Instances (separate processes)."
    ),
    port: int = typer.Option(18081, help="Port of the first instance; the others take the next ports."),
    detach: bool = typer.Option(False, help="Leave the instances running; stop them with `backend stop`."),
) -> None:
    """Run N instances with their workers, registered for the devstack's Prometheus scraping."""
    from concertops.contract.discovery import state_dir
    from concertops.devstack import launcher

    root = state_dir()
    running = launcher.start(root, OPTIONS.load_profile(), instances, port)
    for run in running:
        console.out().print(f"{run.name:<12} [green]healthy[/]  {run.url}  (pid {run.pid})")
    if detach:
        console.out().print("[dim]stop them with: concertops backend stop[/]")
        return
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        console.out().print("[dim]serving; Ctrl-C stops every instance[/]")
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        launcher.stop(root, [r.name for r in running])
        console.out().print("stopped")


@app.command()
def stop() -> None:
    """Stop every backend instance started with `serve --detach`."""
    from concertops.contract.discovery import state_dir
    from concertops.devstack import launcher

    root = state_dir()
    alive = set(launcher.running(root))
    for name in launcher.recorded(root):
        launcher.stop(root, [name])  # a dead one too: its Prometheus target must go
        console.out().print(f"{name:<12} {'stopped' if name in alive else 'was not running (forgotten)'}")
