"""``concertops state``: concertops's own store (the remediation audit, lock holders), out of the service's
schema."""

from __future__ import annotations

import typer

from concertops.cli import console
from concertops.cli.state import OPTIONS

app = typer.Typer(
    help="concertops's own store: the audit and lock holders, kept out of the service's schema.",
    no_args_is_help=True,
)


@app.command("init")
def init() -> None:
    """Create concertops's store where the profile puts it, once, before the first --apply.

    Where: the profile's state_url (env CONCERTOPS_STATE_URL); on the reference service, its own database;
    otherwise a `concertops` schema on the service's MySQL server when the profile's user may create one,
    else the local SQLite state file. Running it again changes nothing.

    Examples:

      concertops state init

      CONCERTOPS_STATE_URL=mysql+pymysql://ops@db/concertops_ops concertops state init
    """
    from concertops.engine import state_store
    from concertops.redact import redact_url

    store, created = state_store.init(OPTIONS.load_profile())
    verb = "created" if created else "already there"
    console.out().print(f"state store {verb}: {redact_url(store.url)} ({store.why})", markup=False)


@app.command("show")
def show(
    timeout: float = typer.Option(5.0, "--timeout", min=1, max=120, help="Seconds to wait for the store."),
) -> None:
    """Where concertops's store is (exit 3 when it does not exist yet: run `concertops state init`)."""
    from concertops.engine import state_store
    from concertops.redact import redact_url

    store = state_store.locate(OPTIONS.load_profile(), timeout)
    console.out().print(f"state store: {redact_url(store.url)} ({store.why})", markup=False)
