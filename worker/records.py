"""The base of every stored record, and the clock records are stamped with."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Record(BaseModel):
    """Base of stored records: unknown fields are rejected so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")
