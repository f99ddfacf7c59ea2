"""BES slots: a lease-based cap of running jobs per training service and per BES endpoint.

Runs that need a slot wait in per-lane sorted sets; whoever frees a slot (or the periodic
dispatcher, which also fills slots a crash left free) hands it to the next waiting run,
interactive lane first but bulk every Nth grant so bulk is never starved. Handing out slots
moves runs out of their waiting sets, so it is the ledger's script (``Ledger.grant``).

A run whose job runs keeps its slot with ``hold``, the one lease primitive of the step and
the sweeper paths: it renews the lease, takes a lost slot back when the caps have room, or
reports the slot lost when they are full (the run then fails and its job is cancelled, so the
caps are never exceeded).
"""

from __future__ import annotations

from enum import IntEnum

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from worker.keys import Keys
from worker.redisio import reply
from worker.run.ledger import Grant, Ledger
from worker.run.scripts import now_ms, script
from worker.settings import TrainingServiceConfig

__all__ = ["Grant", "Hold", "Slots"]


class Hold(IntEnum):
    """What holding a running job's slot found."""

    RENEWED = 0
    RETAKEN = 1  # its lease had run out; the caps had room, so it holds the slot again
    LOST = -1  # its lease had run out and the caps are full: the job must not run on


class Slots:
    """Grant, hold and release BES slots of the configured training services."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        ledger: Ledger,
        services: dict[str, TrainingServiceConfig],
        lease_seconds: float = 120,
        bulk_every: int = 5,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ledger = ledger
        self.services = services
        self.lease_seconds = lease_seconds
        self.bulk_every = bulk_every
        self._hold = redis.register_script(script("hold"))
        self._release = redis.register_script(script("release"))

    async def dispatch(self, service: str, max_grants: int = 500) -> list[Grant]:
        """Hand free slots of ``service`` to waiting runs; returns the grants made."""
        config = self.services.get(service)
        if config is None or not config.endpoints:
            return []
        return await self.ledger.grant(
            service,
            endpoint_caps=[endpoint.max_concurrent_jobs for endpoint in config.endpoints],
            cap=config.max_running,
            reserve=config.interactive_reserve,
            lease_seconds=self.lease_seconds,
            bulk_every=self.bulk_every,
            max_grants=max_grants,
        )

    async def held_endpoint(self, service: str, run_id: str) -> int | None:
        """The endpoint index of the slot ``run_id`` holds, or None."""
        value = await reply(self.redis.hget(self.keys.slot_endpoint(service), run_id))
        return None if value is None else int(value)

    async def hold(self, service: str, run_id: str, endpoint: int) -> Hold:
        """Keep the slot of a run whose job runs (see ``Hold``)."""
        keys, args = self._hold_call(service, run_id, endpoint)
        return Hold(int(await self._hold(keys=keys, args=args)))

    async def hold_in(self, pipe: Pipeline, service: str, run_id: str, endpoint: int) -> bool:
        """Queue ``hold`` on ``pipe`` (its reply is a ``Hold`` value); False if the service
        left the configuration (nothing queued)."""
        if service not in self.services:
            return False
        keys, args = self._hold_call(service, run_id, endpoint)
        await self._hold(keys=keys, args=args, client=pipe)
        return True

    def _hold_call(self, service: str, run_id: str, endpoint: int) -> tuple[list[str], list[str]]:
        config = self.services[service]
        endpoint_cap = (
            config.endpoints[endpoint].max_concurrent_jobs
            if endpoint < len(config.endpoints)
            else 0
        )
        now = now_ms()
        keys = [
            self.keys.slots(service),
            self.keys.endpoint_slots(service, endpoint),
            self.keys.slot_endpoint(service),
        ]
        args = [
            run_id,
            str(now + int(self.lease_seconds * 1000)),
            str(endpoint),
            str(now),
            str(config.max_running),
            str(endpoint_cap),
        ]
        return keys, args

    def _release_keys(self, service: str) -> list[str]:
        count = len(self.services[service].endpoints)
        return [
            self.keys.slots(service),
            self.keys.slot_endpoint(service),
            *(self.keys.endpoint_slots(service, i) for i in range(count)),
        ]

    async def release_in(self, pipe: Pipeline, service: str, run_id: str) -> None:
        """Queue on ``pipe`` the release of the run's slot (idempotent)."""
        if service in self.services:
            await self._release(keys=self._release_keys(service), args=[run_id], client=pipe)

    async def release(self, service: str, run_id: str) -> bool:
        """Give back the run's slot (idempotent); False when it held none."""
        if service not in self.services:
            return False
        return bool(await self._release(keys=self._release_keys(service), args=[run_id]))

    async def throttle(self, service: str, seconds: float) -> None:
        """Pause dispatch of ``service`` for ``seconds`` after a 429/503."""
        await self.redis.set(self.keys.throttle(service), "1", px=max(1, int(seconds * 1000)))
