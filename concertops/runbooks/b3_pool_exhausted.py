"""B-3 — a pool too small for the load (the driver's default of 10)."""

from __future__ import annotations

from concertops.runbooks.verdicts import Firing


def verdict(firing: Firing) -> str | None:
    if firing("pool_held_in_transaction:CRITICAL"):
        return (
            "the service's pool is held by connections asleep inside open transactions: every request waits; "
            "kill them (their transactions roll back)"
        )
    if firing("pool_in_use:CRITICAL"):
        return "the service's pool is in use to its size: requests wait for a connection; size the pool"
    if firing("connection_share") or firing("max_connection_errors"):
        return "MySQL is at its max_connections: kill idle connections before growing any pool"
    if firing("pool_timeouts"):
        return "requests wait for a pooled connection and time out: size the pool explicitly"
    return None
