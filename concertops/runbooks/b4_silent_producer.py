"""B-4 — events dropped without an error while the producer is disconnected."""

from __future__ import annotations

from concertops.runbooks.verdicts import Seen, lost_topic


def verdict(firing: Seen) -> str | None:
    if lost := lost_topic(firing, "unpublished_payments"):
        return lost
    if firing("producer_connected") and firing("skip_policy"):
        return "the producer is disconnected and set to drop: events are being lost right now"
    if firing("skipped_events"):
        return "events were dropped while disconnected: re-publish the window"
    if firing("unnotified_payments"):
        return "payments were never announced: re-publish their events"
    if firing("unpublished_payments"):
        return "successful payments have no event on the topic (dropped while disconnected?): re-publish them"
    return None
