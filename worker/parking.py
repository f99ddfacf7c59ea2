"""Runs parked with the poll sweeper: claiming due polls, moving them on, job durations.

A training run whose BES job is still running is *parked*: instead of a deferred arq job per
poll, it sits in one sorted set scored by its next poll, and each worker's sweeper polls the
due ones in batches (see ``worker/sweeper.py``). The run record stays the truth: only steps
change it; the sweeper only counts polls, keeps slot leases alive and wakes the run's step.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from worker import lua
from worker.keys import Keys
from worker.polling import expected_duration
from worker.redisio import reply
from worker.store import now_ms

DURATIONS_KEPT = 64


class ParkedRuns:
    """Redis side of parked runs (the polls set) and of recent BES job durations."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._claim_polls = redis.register_script(lua.CLAIM_POLLS)

    async def claim_polls(self, limit: int, claim_seconds: float) -> list[str]:
        """Parked runs whose poll is due, each held back ``claim_seconds`` for the caller."""
        now = now_ms()
        ids: list[str] = await self._claim_polls(
            keys=[self.keys.polls], args=[now, now + int(claim_seconds * 1000), limit]
        )
        return ids

    def repark(self, pipe: Pipeline, run_id: str, poll_in: float) -> None:
        """Queue on ``pipe``: the run's next poll in ``poll_in`` s, one more poll counted.

        Only a run still parked is moved (``XX``): a step that took it off meanwhile wins.
        """
        pipe.zadd(self.keys.polls, {run_id: now_ms() + int(poll_in * 1000)}, xx=True)
        pipe.hincrby(self.keys.run(run_id), "polls", 1)

    def mark_finished(self, pipe: Pipeline, run_id: str, job_id: str) -> None:
        """Queue on ``pipe``: the run's BES job was seen ``Finished`` (its step skips a poll)."""
        pipe.hset(self.keys.run(run_id), "finished_job", job_id)

    def unpark(self, pipe: Pipeline, run_id: str) -> None:
        """Queue on ``pipe``: forget a parked run that is gone or no longer training."""
        pipe.zrem(self.keys.polls, run_id)

    async def overdue(self, before_ms: int, limit: int = 1000) -> list[str]:
        """Parked runs whose poll was due before ``before_ms`` and that no sweeper claimed."""
        ids: list[str] = await self.redis.zrangebyscore(
            self.keys.polls, "-inf", before_ms, start=0, num=limit
        )
        return ids

    async def parked_count(self) -> int:
        """How many runs are parked with the poll sweeper."""
        return int(await reply(self.redis.zcard(self.keys.polls)))

    async def record_duration(self, service: str, seconds: float) -> None:
        """Remember how long a finished BES job of ``service`` took (the last few dozen)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.record_duration_in(pipe, service, seconds)
            await pipe.execute()

    def record_duration_in(self, pipe: Pipeline, service: str, seconds: float) -> None:
        """Queue on ``pipe`` the duration of a finished BES job of ``service``."""
        key = self.keys.durations(service)
        pipe.lpush(key, f"{seconds:.3f}")
        pipe.ltrim(key, 0, DURATIONS_KEPT - 1)

    async def durations(self, service: str) -> list[float]:
        """Recent BES job durations (s) of ``service``, newest first."""
        values: list[str] = await reply(self.redis.lrange(self.keys.durations(service), 0, -1))
        return [float(v) for v in values]


class DurationEstimates:
    """Each training service's expected BES job duration, read at most every ``refresh`` s."""

    def __init__(self, parked: ParkedRuns, refresh_seconds: float = 2.0) -> None:
        self.parked = parked
        self.refresh_seconds = refresh_seconds
        self._cache: dict[str, tuple[float, float | None]] = {}

    async def expected(self, service: str) -> float | None:
        """The duration most recent jobs of ``service`` outlasted, or None without history."""
        now = time.monotonic()
        cached = self._cache.get(service)
        if cached is not None and now - cached[0] < self.refresh_seconds:
            return cached[1]
        value = expected_duration(await self.parked.durations(service))
        self._cache[service] = (now, value)
        return value
