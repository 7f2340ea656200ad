"""Producer settings every sender to the service's broker shares (the service and concertops alike)."""

from __future__ import annotations

from typing import Any


def producer_settings(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        # One message per batch: the Tansu broker's list_offsets are only right for such batches, and the
        # runbooks read consumer lag through list_offsets.
        "batch.num.messages": 1,
        "linger.ms": 0,
        # One request in flight per connection: concurrent produce requests to one partition race inside the
        # Tansu broker after a restart (AlreadyExists on a batch, then a watermark that hides the data); it
        # also keeps the order of a key's messages.
        "max.in.flight.requests.per.connection": 1,
        # Topics are created once, with one partition, when the broker answers (``ensure_topics``). A send
        # racing ahead of that would have the broker auto-create the topic (with 4 partitions on Tansu),
        # concurrently with other instances, which can leave messages its fetches never return.
        "allow.auto.create.topics": False,
    }
