"""Deterministic event ids: one (topic, aggregate) is always the same event, so re-publishing never
creates a new one and consumers can deduplicate by id."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c1f8e-3b0e-4e59-9a4f-0c6d2f6a5b10")


def event_id(topic: str, aggregate_id: int | str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{topic}:{aggregate_id}"))
