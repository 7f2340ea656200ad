"""Naive UTC timestamps, matching ``NOW()`` in sessions that run with ``time_zone = '+00:00'``."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
