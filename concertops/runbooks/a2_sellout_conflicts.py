"""A-2 — a sell-out answers most requests with 409, which naive monitoring reads as an error rate."""

from __future__ import annotations

from concertops.runbooks.verdicts import Seen


def verdict(firing: Seen) -> str | None:
    if firing("probe_backends_down:CRITICAL"):
        return "service unreachable on every backend (connections refused): an outage, not a sell-out"
    if firing("server_error_share"):
        return "5xx over 1%: a real incident, not a sell-out (see A-1, B-1, B-3)"
    if firing("probe_server_errors"):
        return "a GET that reads the database fails (5xx or no answer): a real incident (see A-1, B-1, B-3)"
    if firing("probe_backends_down"):
        return "some backends refuse every connection: the others serve; restart or drain the ones down"
    if firing("conflict_share") or firing("conflict_rate"):
        return "business sell-out, not an incident: 409s are refusals and 5xx stays under 1%"
    sold = firing.value("sold_out_recently")
    if sold and firing("sold_out_recently"):
        named = ", ".join(str(row[0]) for row in firing.rows("sold_out_recently")[:3])
        more = f" and {int(sold) - 3} more" if sold > 3 else ""
        return (
            f"sell-out: {int(sold)} schedule(s) with every seat held or confirmed ({named}{more}): "
            "refusals of their seats are business, not an outage"
        )
    return None
