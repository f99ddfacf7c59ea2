"""Recurring retrains against a real Redis: each slot fires once, whoever races for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from arq.connections import RedisSettings, create_pool

from worker.keys import Keys
from worker.queue import StepQueue
from worker.redisio import reply
from worker.schedules import Schedule, Schedules
from worker.schemas import ClassicTarget, NewServiceTarget, Tenant
from worker.serialization import deserialize, serialize
from worker.store import Store

START = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
async def schedules(redis: aioredis.Redis, redis_url: str) -> AsyncIterator[Schedules]:
    """Schedules over a store with three tenants (two classic, one new service)."""
    store = Store(redis, Keys("t"))
    for tenant_id, target in [
        ("a", ClassicTarget(web_service_id="s", resource_name="r")),
        ("b", ClassicTarget(web_service_id="s", resource_name="r")),
        ("c", NewServiceTarget(template_service="tpl")),
    ]:
        await store.create_tenant(
            Tenant(id=tenant_id, target=target, data_path=f"data/{tenant_id}/x.csv")
        )
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name="t:queue",
    )
    yield Schedules(redis, store, StepQueue(pool, "t:queue"))
    await pool.aclose()


async def test_a_tenant_schedule_fires_once_per_slot_even_when_workers_race(
    schedules: Schedules,
) -> None:
    """Five concurrent passes over one due slot create exactly one run."""
    await schedules.put_tenant("a", "0 * * * *")
    await schedules.redis.zadd(schedules.keys.schedules, {"tenant-a": 0})  # due now
    fired = await asyncio.gather(*(schedules.fire_due(START) for _ in range(5)))
    assert sum(fired) == 1
    runs = await schedules.store.tenant_run_ids("a")
    assert len(runs) == 1
    run = await schedules.store.get_run(runs[0])
    assert run is not None
    assert run.reason == "schedule tenant-a"
    assert await schedules.fire_due(START) == 0
    # The schedule moved to its next slot: the next hour after START.
    (entry,) = await schedules.list()
    assert entry[1] == START + timedelta(hours=1)


async def test_a_fleet_schedule_starts_one_batch_of_the_filtered_tenants(
    schedules: Schedules,
) -> None:
    """A fleet-wide schedule limited to classic tenants creates a batch of their runs."""
    await schedules.put(Schedule(name="nightly", cron="0 2 * * *", target_kind="classic"), START)
    slot = await schedules.redis.zscore(schedules.keys.schedules, "nightly")
    assert slot is not None
    assert await schedules.fire_due(START + timedelta(days=1)) == 1
    found = await schedules.store.get_batch(f"sched-nightly-{int(slot)}")
    assert found is not None
    batch, counters = found
    assert batch.total == 2
    assert counters["n:queued"] == 2


async def test_a_claim_left_by_a_crashed_worker_is_fired_later(schedules: Schedules) -> None:
    """A slot claimed but never fired (the claimer died) is fired by a later pass, once."""
    await schedules.put_tenant("b", "0 * * * *")
    await reply(schedules.redis.hset(schedules.keys.schedules_pending, "tenant-b", "0"))
    await schedules.fire_due(START)
    await schedules.fire_due(START)
    assert len(await schedules.store.tenant_run_ids("b")) == 1
    assert await reply(schedules.redis.hlen(schedules.keys.schedules_pending)) == 0
