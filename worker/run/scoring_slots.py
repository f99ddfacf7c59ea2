"""Scoring slots: a lease-based cap of running BES scoring jobs per predictive web service.

A run scoring its holdout takes one slot of the tenant's predictive web service before it
submits a scoring job, keeps it (renewing the lease) while it polls, and gives it back when
both models are scored or the run ends. A run that finds the service full waits and tries
again. Taking and keeping use the same lease primitive as training slots (``hold.lua``):
a slot is taken only while the live leases are below the cap, so the cap holds even when a
worker dies holding one (its lease runs out).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from worker.keys import Keys
from worker.run.scripts import now_ms, script
from worker.run.slots import Hold


class ScoringSlots:
    """Take, keep and give back scoring slots of predictive web services."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        cap: int,
        caps: dict[str, int] | None = None,
        lease_seconds: float = 300,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.cap = cap
        self.caps = dict(caps or {})
        self.lease_seconds = lease_seconds
        self._hold = redis.register_script(script("hold"))
        self._release = redis.register_script(script("release"))

    def cap_of(self, web_service_id: str) -> int:
        """The cap of running scoring jobs of ``web_service_id``."""
        return self.caps.get(web_service_id, self.cap)

    async def hold(self, web_service_id: str, run_id: str) -> Hold:
        """Take or keep the run's slot: RENEWED/RETAKEN when held, LOST when the cap is full."""
        slots = self.keys.scoring_slots(web_service_id)
        now = now_ms()
        cap = str(self.cap_of(web_service_id))
        held = await self._hold(
            keys=[slots, slots, self.keys.scoring_owner(web_service_id)],
            args=[run_id, str(now + int(self.lease_seconds * 1000)), "0", str(now), cap, cap],
        )
        return Hold(int(held))

    async def release(self, web_service_id: str, run_id: str) -> bool:
        """Give back the run's slot (idempotent); False when it held none."""
        keys = [self.keys.scoring_slots(web_service_id), self.keys.scoring_owner(web_service_id)]
        return bool(await self._release(keys=keys, args=[run_id]))

    async def in_use(self, web_service_id: str) -> int:
        """Slots whose lease is alive."""
        count = await self.redis.zcount(
            self.keys.scoring_slots(web_service_id), f"({now_ms()}", "+inf"
        )
        return int(count)
