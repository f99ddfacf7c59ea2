"""Typing bridge for redis-py's asyncio client, whose stubs type replies as ``Awaitable[T] | T``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def reply(value: Awaitable[T] | T) -> T:
    """Await a redis-py asyncio reply (its stubs also allow a plain value)."""
    if inspect.isawaitable(value):
        return await value
    return value
