"""Recurring retrains: per-tenant and fleet-wide cron schedules (UTC), fired once per slot.

Each schedule sits in a sorted set scored by its next fire time. The worker's cron claims a
due slot with a Lua compare-and-set on that score (only one worker wins), notes the claim as
pending, fires it (a run for a tenant schedule, a batch for a fleet schedule) and clears the
claim. A claim left pending by a crashed worker is fired by the next pass; a slot's run is
keyed by ``schedule:<name>:<slot>`` so a re-fired slot finds the run it already made.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, ConfigDict, Field

from worker import lua
from worker.bulk import start_batch
from worker.cron import CronExpression, next_fire
from worker.queue import StepQueue
from worker.redisio import reply
from worker.schemas import TENANT_ID_PATTERN, Lane, TargetKind
from worker.settings import TrainingServiceConfig
from worker.store import RunRequest, Store, TenantNotFound

log = structlog.get_logger("retrainq.schedules")

SLOT_MEMORY = timedelta(days=2)
STALE_CLAIM_MS = 60_000


def tenant_schedule_name(tenant_id: str) -> str:
    """The schedule name of a tenant's own schedule."""
    return f"tenant-{tenant_id}"


class Schedule(BaseModel):
    """A cron schedule of retrains: one tenant's, or the whole fleet's (optionally filtered)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,70}$")
    cron: CronExpression
    kind: Literal["tenant", "fleet"] = "fleet"
    tenant_id: str | None = Field(default=None, pattern=TENANT_ID_PATTERN)
    target_kind: TargetKind | None = None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Schedules:
    """Stores schedules and fires the due ones."""

    def __init__(
        self,
        redis: aioredis.Redis,
        store: Store,
        queue: StepQueue,
        services: Mapping[str, TrainingServiceConfig] | None = None,
    ) -> None:
        self.redis = redis
        self.store = store
        self.keys = store.keys
        self.queue = queue
        self.services = services
        self._claim = redis.register_script(lua.CLAIM_SCHEDULE)

    async def put(self, schedule: Schedule, now: datetime | None = None) -> datetime:
        """Create or replace a schedule; returns its next fire time."""
        upcoming = next_fire(schedule.cron, now or datetime.now(UTC))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.schedule(schedule.name), schedule.model_dump_json())
            pipe.zadd(self.keys.schedules, {schedule.name: _ms(upcoming)})
            await pipe.execute()
        return upcoming

    async def put_tenant(self, tenant_id: str, cron: str | None) -> None:
        """Set (or with None, remove) a tenant's own schedule."""
        name = tenant_schedule_name(tenant_id)
        if cron is None:
            await self.delete(name)
            return
        await self.put(Schedule(name=name, cron=cron, kind="tenant", tenant_id=tenant_id))

    async def delete(self, name: str) -> bool:
        """Remove a schedule; False when there was none."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.schedule(name))
            pipe.zrem(self.keys.schedules, name)
            pipe.hdel(self.keys.schedules_pending, name)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    async def get(self, name: str) -> Schedule | None:
        """A schedule by name."""
        doc = await reply(self.redis.get(self.keys.schedule(name)))
        return None if doc is None else Schedule.model_validate_json(doc)

    async def find(self, name: str) -> tuple[Schedule, datetime] | None:
        """A schedule with its next fire time, or None."""
        schedule = await self.get(name)
        score = await reply(self.redis.zscore(self.keys.schedules, name))
        if schedule is None or score is None:
            return None
        return schedule, datetime.fromtimestamp(score / 1000, UTC)

    async def list(self, offset: int = 0, limit: int = 100) -> list[tuple[Schedule, datetime]]:
        """Schedules with their next fire times, soonest first."""
        entries = await reply(
            self.redis.zrange(self.keys.schedules, offset, offset + limit - 1, withscores=True)
        )
        found = []
        for name, score in entries:
            schedule = await self.get(str(name))
            if schedule is not None:
                found.append((schedule, datetime.fromtimestamp(score / 1000, UTC)))
        return found

    async def fire_due(self, now: datetime | None = None) -> int:
        """Fire every schedule slot due by ``now``; returns how many fired here."""
        moment = now or datetime.now(UTC)
        due = await reply(
            self.redis.zrangebyscore(self.keys.schedules, "-inf", _ms(moment), withscores=True)
        )
        fired = 0
        for name, score in due:
            schedule = await self.get(str(name))
            if schedule is None:
                await reply(self.redis.zrem(self.keys.schedules, str(name)))
                continue
            slot = int(score)
            following = next_fire(
                schedule.cron, max(moment, datetime.fromtimestamp(slot / 1000, UTC))
            )
            claimed = await self._claim(
                keys=[self.keys.schedules, self.keys.schedules_pending],
                args=[schedule.name, str(slot), _ms(following)],
            )
            if claimed:
                await self._fire(schedule, slot)
                fired += 1
        await self._recover_stale_claims(moment)
        return fired

    async def _recover_stale_claims(self, now: datetime) -> None:
        pending = await reply(self.redis.hgetall(self.keys.schedules_pending))
        for name, slot in pending.items():
            if int(slot) < _ms(now) - STALE_CLAIM_MS:
                schedule = await self.get(name)
                if schedule is not None:
                    log.warning("schedule.recovering_claim", schedule=name, slot=int(slot))
                    await self._fire(schedule, int(slot))
                else:
                    await reply(self.redis.hdel(self.keys.schedules_pending, name))

    async def _fire(self, schedule: Schedule, slot: int) -> None:
        reason = f"schedule {schedule.name}"
        if schedule.kind == "tenant" and schedule.tenant_id is not None:
            await self._fire_tenant(schedule, schedule.tenant_id, slot, reason)
        else:
            await self._fire_fleet(schedule, slot, reason)
        await reply(self.redis.hdel(self.keys.schedules_pending, schedule.name))

    async def _fire_tenant(
        self, schedule: Schedule, tenant_id: str, slot: int, reason: str
    ) -> None:
        key = f"{schedule.name}:{slot}"
        if await self.store.idempotent_run("schedule", key) is not None:
            return
        try:
            created = await self.store.create_run(
                RunRequest(tenant_id=tenant_id, lane=Lane.BULK, reason=reason)
            )
        except TenantNotFound:
            log.warning("schedule.tenant_gone", schedule=schedule.name, tenant_id=tenant_id)
            await self.delete(schedule.name)
            return
        await self.store.remember_idempotent("schedule", key, created.run_id, SLOT_MEMORY)
        if created.created:
            await self.queue.advance(created.run_id, 0)
        log.info(
            "schedule.fired",
            schedule=schedule.name,
            run_id=created.run_id,
            coalesced=not created.created,
        )

    async def _fire_fleet(self, schedule: Schedule, slot: int, reason: str) -> None:
        batch_id = f"sched-{schedule.name}-{slot}"
        if await self.store.get_batch(batch_id) is not None:
            return
        ids = await self.store.list_tenant_ids(0, await self.store.count_tenants())
        tenants = [
            t
            for t in await self.store.get_tenants(ids)
            if not t.deleted and schedule.target_kind in (None, t.target.kind)
        ]
        started = await start_batch(
            self.store,
            self.queue,
            tenants,
            reason=reason,
            batch_id=batch_id,
            services=self.services,
        )
        log.info(
            "schedule.fired",
            schedule=schedule.name,
            batch_id=batch_id,
            runs=started.created,
            coalesced=started.coalesced,
        )
