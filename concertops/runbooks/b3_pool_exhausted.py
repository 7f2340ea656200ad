"""B-3 — a pool too small for the load (the driver's default of 10)."""

from __future__ import annotations

from concertops.runbooks.verdicts import Seen


def verdict(firing: Seen) -> str | None:
    in_use = firing.value("pool_in_use")
    if in_use is not None and in_use > 1.0:
        return (
            f"one instance has {in_use:.0%} of the map's db_pool_size in use: the constant is stale (a "
            "deploy raised the pool?); correct deploy_constants.db_pool_size before judging or sizing it"
        )
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
