"""B-2 — lost expiry events leave seats HELD past their expiry."""

from __future__ import annotations

from concertops.runbooks.verdicts import Firing


def verdict(firing: Firing) -> str | None:
    if firing("overdue_holds") and firing("blocking_sleeps"):
        return "the blocking expiry consumer sleeps on messages it already committed; overdue seats stay HELD"
    if firing("overdue_holds"):
        return "seats stay HELD past their expiry: force-expire them and check the consumer"
    if firing("dlq_depth"):
        return "expiries failed into the DLQ: replay it once the cause is fixed"
    return None
