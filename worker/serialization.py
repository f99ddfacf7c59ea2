"""arq job (de)serialization as JSON: job arguments are ids, never pickled objects."""

from __future__ import annotations

import json
from typing import Any


def serialize(payload: dict[str, Any]) -> bytes:
    """Encode an arq job or result payload as compact JSON."""
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    """Decode an arq payload written by ``serialize``."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("arq payload is not a JSON object")
    return value
