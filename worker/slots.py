"""BES slots: a lease-based cap of running jobs per training service and per BES endpoint.

Runs that need a slot wait in per-lane sorted sets; whoever frees a slot (or the periodic
dispatcher, which also fills slots a crash left free) hands it to the next waiting run,
interactive lane first but bulk every Nth grant so bulk is never starved.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from worker import lua
from worker.keys import Keys
from worker.redisio import reply
from worker.schemas import Lane
from worker.settings import TrainingServiceConfig
from worker.store import now_ms


@dataclass(frozen=True)
class Grant:
    """A slot handed to a run, on one BES endpoint of the service."""

    run_id: str
    endpoint: int


class Slots:
    """Dispatch, renew and release BES slots of the configured training services."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        services: dict[str, TrainingServiceConfig],
        lease_seconds: int = 120,
        bulk_every: int = 5,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.services = services
        self.lease_ms = lease_seconds * 1000
        self.bulk_every = bulk_every
        self._dispatch = redis.register_script(lua.DISPATCH)
        self._hold = redis.register_script(lua.HOLD)
        self._release = redis.register_script(lua.RELEASE)
        self._renew = redis.register_script(lua.RENEW)

    def waiting_key(self, service: str, lane: Lane) -> str:
        """Where a run of ``lane`` waits for a slot of ``service``."""
        return self.keys.waiting(service, lane.value)

    def _endpoint_keys(self, service: str) -> list[str]:
        count = len(self.services[service].endpoints)
        return [self.keys.endpoint_slots(service, i) for i in range(count)]

    async def dispatch(self, service: str, max_grants: int = 500) -> list[Grant]:
        """Hand free slots of ``service`` to waiting runs; returns the grants made."""
        config = self.services[service]
        if not config.endpoints:
            return []
        raw = await self._dispatch(
            keys=[
                self.keys.slots(service),
                self.keys.waiting(service, Lane.INTERACTIVE.value),
                self.keys.waiting(service, Lane.BULK.value),
                self.keys.slot_endpoint(service),
                self.keys.due,
                self.keys.dispatch_counter(service),
                self.keys.throttle(service),
                *self._endpoint_keys(service),
            ],
            args=[
                now_ms(),
                self.lease_ms,
                config.max_running,
                self.bulk_every,
                max_grants,
                config.interactive_reserve,
                *(endpoint.max_concurrent_jobs for endpoint in config.endpoints),
            ],
        )
        return [Grant(str(raw[i]), int(raw[i + 1])) for i in range(0, len(raw), 2)]

    async def ensure_waiting(self, service: str, lane: Lane, run_id: str) -> None:
        """Put a run (back) in its lane's waiting set unless it is there or holds a slot."""
        await self.redis.zadd(self.keys.waiting(service, lane.value), {run_id: now_ms()}, nx=True)

    async def held_endpoint(self, service: str, run_id: str) -> int | None:
        """The endpoint index of the slot ``run_id`` holds, or None."""
        value = await reply(self.redis.hget(self.keys.slot_endpoint(service), run_id))
        return None if value is None else int(value)

    async def hold(self, service: str, run_id: str, endpoint: int) -> bool:
        """Renew the lease of a run whose BES job runs; True when the slot had to be taken
        back (its lease ran out, and the slot may have gone to another run meanwhile)."""
        keys = [*self._renew_keys(service, endpoint), self.keys.slot_endpoint(service)]
        taken_back = await self._hold(keys=keys, args=[run_id, now_ms() + self.lease_ms, endpoint])
        return bool(taken_back)

    async def renew_in(self, pipe: Pipeline, service: str, run_id: str, endpoint: int) -> None:
        """Queue on ``pipe`` the renewal of the run's lease (a no-op if it holds no slot)."""
        if service not in self.services:
            return
        await self._renew(  # queues the script on the pipeline
            keys=self._renew_keys(service, endpoint),
            args=[run_id, now_ms() + self.lease_ms],
            client=pipe,
        )

    def _renew_keys(self, service: str, endpoint: int) -> list[str]:
        return [self.keys.slots(service), self.keys.endpoint_slots(service, endpoint)]

    async def release_in(self, pipe: Pipeline, service: str, run_id: str) -> None:
        """Queue on ``pipe`` the release of the run's slot (idempotent)."""
        if service not in self.services:
            return
        await self._release(  # queues the script on the pipeline
            keys=self._release_keys(service), args=[run_id], client=pipe
        )

    def _release_keys(self, service: str) -> list[str]:
        return [
            self.keys.slots(service),
            self.keys.slot_endpoint(service),
            *self._endpoint_keys(service),
        ]

    async def release(self, service: str, run_id: str) -> bool:
        """Give back the run's slot (idempotent); False when it held none."""
        if service not in self.services:
            return False
        held = await self._release(keys=self._release_keys(service), args=[run_id])
        return bool(held)

    async def throttle(self, service: str, seconds: float) -> None:
        """Pause dispatch of ``service`` for ``seconds`` after a 429/503."""
        await self.redis.set(self.keys.throttle(service), "1", px=max(1, int(seconds * 1000)))

    async def in_use(self, service: str) -> int:
        """Slots of ``service`` currently leased."""
        return int(await reply(self.redis.zcard(self.keys.slots(service))))

    async def waiting(self, service: str) -> int:
        """Runs waiting for a slot of ``service``, both lanes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for lane in Lane:
                pipe.zcard(self.keys.waiting(service, lane.value))
            counts = await pipe.execute()
        return sum(int(c) for c in counts)
