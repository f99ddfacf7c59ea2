"""Recent BES job durations per training service.

A training run whose BES job is still running is *parked*: instead of a deferred arq job per
poll, it sits in one sorted set scored by its next poll, and each worker's sweeper polls the
due ones in batches (see ``worker/sweeper.py``). The ledger writes that set; this module
keeps the job durations that shape the poll schedule (``worker/polling.py``).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from worker import bulk_order
from worker.keys import Keys
from worker.polling import expected_duration
from worker.redisio import reply

DURATIONS_KEPT = 64


class ParkedRuns:
    """Recent BES job durations of each training service."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def record_duration(
        self, service: str, seconds: float, tenant_id: str | None = None
    ) -> None:
        """Remember how long a finished BES job of ``service`` took (the last few dozen of
        the service, and the last few of ``tenant_id``)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.record_duration_in(pipe, service, seconds, tenant_id)
            await pipe.execute()

    def record_duration_in(
        self, pipe: Pipeline, service: str, seconds: float, tenant_id: str | None = None
    ) -> None:
        """Queue on ``pipe`` the duration of a finished BES job of ``service`` (and of the
        tenant's, for the bulk lane's order)."""
        key = self.keys.durations(service)
        pipe.lpush(key, f"{seconds:.3f}")
        pipe.ltrim(key, 0, DURATIONS_KEPT - 1)
        if tenant_id is not None:
            bulk_order.record_in(pipe, self.keys, service, tenant_id, seconds)

    async def durations(self, service: str) -> list[float]:
        """Recent BES job durations (s) of ``service``, newest first."""
        values: list[str] = await reply(self.redis.lrange(self.keys.durations(service), 0, -1))
        return [float(v) for v in values]


class DurationEstimates:
    """Expected BES job durations: a tenant's own, else its training service's (the
    service's read at most every ``refresh`` s)."""

    def __init__(self, parked: ParkedRuns, refresh_seconds: float = 2.0) -> None:
        self.parked = parked
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, tuple[float, float | None]] = {}

    async def expected(self, service: str, tenant_id: str | None = None) -> float | None:
        """The duration the job will most likely outlast: the shortest of the tenant's last
        few jobs on ``service``, else what most recent jobs of the service outlasted, or
        None without history.

        A tenant's own jobs come first: in a fleet whose jobs differ in length a service's
        quantile polls long jobs too early and short ones too late (and the bulk lane's
        longest-first order makes the recent jobs the long ones)."""
        if tenant_id is not None:
            key = self.parked.keys.tenant_durations(service)
            own = bulk_order.recent_of(await reply(self.parked.redis.hget(key, tenant_id)))
            if own:
                return min(own)
        now = time.monotonic()
        cached = self._cache.get(service)
        if cached is not None and now - cached[0] < self.refresh_seconds:
            return cached[1]
        value = expected_duration(await self.parked.durations(service))
        self._cache[service] = (now, value)
        return value
