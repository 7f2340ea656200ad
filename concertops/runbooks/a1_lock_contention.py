"""A-1 — lock waiters keep pooled connections until the pool runs dry."""

from __future__ import annotations

from concertops.runbooks.verdicts import Seen


def verdict(firing: Seen) -> str | None:
    drained = firing("pool_usage") or firing("pool_timeouts")
    if drained and firing("lock_errors"):
        return (
            "seat-lock waiters are holding pooled connections: let fewer users in, then fail fast on the lock"
        )
    if drained:
        return "the pool is drained without lock contention: see B-3 (pool size)"
    if firing("lock_errors"):
        return "seat-lock contention is rising; the pool still copes"
    if firing("lock_waiters"):  # a service without metrics, seen in its Redis
        waiters = firing.value("lock_waiters") or 0
        held = [str(row[0]) for row in firing.rows("seat_locks_held")[:3]]
        seats = f" on {', '.join(held)}" if held else ""
        return (
            f"seat-lock contention: about {waiters:.0f} requests retrying the seat locks{seats}: let fewer "
            "users in, then fail fast on the lock"
        )
    if firing("probe_p95"):  # a service without metrics, seen from outside
        return "a GET that reads the database answers slowly: the pool is likely drained (lock waiters, B-3)"
    return None
