"""Short Redis locks with an owner and a TTL (the per-tenant deploy lock)."""

from __future__ import annotations

import redis.asyncio as aioredis

from worker import lua


class Locks:
    """Acquire (or keep) and release owner-checked locks."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._lock = redis.register_script(lua.LOCK)
        self._unlock = redis.register_script(lua.UNLOCK)

    async def acquire(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take the lock, or extend it if ``owner`` holds it already."""
        return bool(await self._lock(keys=[key], args=[owner, ttl_ms]))

    async def release(self, key: str, owner: str) -> None:
        """Release the lock if ``owner`` still holds it."""
        await self._unlock(keys=[key], args=[owner])
