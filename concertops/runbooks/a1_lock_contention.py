"""A-1 — lock waiters keep pooled connections until the pool runs dry."""

from __future__ import annotations

from concertops.runbooks.verdicts import Firing


def verdict(firing: Firing) -> str | None:
    drained = firing("pool_usage") or firing("pool_timeouts")
    if drained and firing("lock_errors"):
        return (
            "seat-lock waiters are holding pooled connections: let fewer users in, then fail fast on the lock"
        )
    if drained:
        return "the pool is drained without lock contention: see B-3 (pool size)"
    if firing("lock_errors"):
        return "seat-lock contention is rising; the pool still copes"
    if firing("probe_p95"):  # a service without metrics, seen from outside
        return "a GET that reads the database answers slowly: the pool is likely drained (lock waiters, B-3)"
    return None
