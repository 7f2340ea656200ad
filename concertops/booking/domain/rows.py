"""Small typed helpers over SQLAlchemy results."""

from __future__ import annotations

import sqlalchemy as sa


def new_id(result: sa.CursorResult) -> int:
    """The primary key of the row an INSERT just created."""
    key = result.inserted_primary_key
    assert key is not None, "INSERT without a generated primary key"
    return int(key[0])
