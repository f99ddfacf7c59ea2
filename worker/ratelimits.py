"""Counters of failed authentications per client address and per presented key prefix.

Fixed windows in Redis (``INCR`` + ``EXPIRE``). The API asks ``blocked`` before it looks a
key up (an address over its limit is answered 429 at once) and ``failed`` after a key was
refused; valid keys are never counted, so callers with good keys elsewhere are not slowed.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from worker.keys import Keys
from worker.redisio import reply

ADDRESS = "addr"
KEY_PREFIX = "key"
PREFIX_CHARS = 8


@dataclass(frozen=True)
class FailedAuthLimits:
    """How many failed authentications a window allows per address and per key prefix."""

    per_address: int
    per_key_prefix: int
    window_seconds: int


def key_prefix_id(key: str) -> str:
    """A short digest of the first characters of a presented key (never the key itself)."""
    return hashlib.sha256(key[:PREFIX_CHARS].encode("utf-8", "replace")).hexdigest()[:16]


class FailedAuthCounters:
    """Failed-authentication counters under ``keys``, judged against ``limits``."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, limits: FailedAuthLimits) -> None:
        self.redis = redis
        self.keys = keys
        self.limits = limits

    def _window(self) -> tuple[int, float]:
        now = time.time()
        window = int(now // self.limits.window_seconds)
        return window, (window + 1) * self.limits.window_seconds - now

    async def blocked(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None while under its limit."""
        window, left = self._window()
        raw = await reply(self.redis.get(self.keys.auth_failures(ADDRESS, address, window)))
        return left if raw is not None and int(raw) >= self.limits.per_address else None

    async def failed(self, address: str, key: str | None) -> float | None:
        """Count one failed authentication; seconds to wait when a limit is now passed."""
        window, left = self._window()
        names = [self.keys.auth_failures(ADDRESS, address, window)]
        if key:
            names.append(self.keys.auth_failures(KEY_PREFIX, key_prefix_id(key), window))
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.incr(name)
                pipe.expire(name, self.limits.window_seconds + 1)
            counts = (await pipe.execute())[::2]
        over_address = int(counts[0]) > self.limits.per_address
        over_prefix = len(counts) > 1 and int(counts[1]) > self.limits.per_key_prefix
        return left if over_address or over_prefix else None
