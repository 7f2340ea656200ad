"""B-1 — a broker outage turns committed payments into HTTP 500s."""

from __future__ import annotations

from concertops.runbooks.verdicts import Seen, lost_topic


def verdict(firing: Seen) -> str | None:
    if lost := lost_topic(firing, "unpublished_payments"):
        return lost
    if firing("double_payments"):
        return "reservations were paid twice: refund them, then stop the cause"
    if firing("payment_server_errors") and firing("producer_errors"):
        return "the broker is failing payments after they commit: users will pay again"
    if firing("outbox_backlog") or firing("outbox_oldest"):
        return "events wait in the outbox for the broker; payments are unaffected"
    if firing("unnotified_payments"):
        return "confirmed payments were never announced: re-publish their events"
    if firing("unpublished_payments"):
        return "successful payments have no event on the topic: re-publish exactly those"
    return None
