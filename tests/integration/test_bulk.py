"""Starting a bulk batch: runs that can only wait are created waiting, with no first step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from pydantic import SecretStr

from worker.bulk import start_batch
from worker.keys import Keys
from worker.queue import StepQueue, advance_job_id
from worker.schemas import ClassicTarget, RunState, Tenant
from worker.serialization import deserialize, serialize
from worker.settings import BesEndpointConfig, TrainingServiceConfig
from worker.store import Store

QUEUE = "t:queue"
SERVICES = {
    "default": TrainingServiceConfig(
        endpoints=[BesEndpointConfig(url="http://127.0.0.1:9/bes", api_key=SecretStr("k"))]
    )
}


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    """An arq pool on the test Redis."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE,
    )
    yield pool
    await pool.aclose()


async def stored(redis: aioredis.Redis, tenants: list[Tenant]) -> Store:
    """A store on the test Redis holding ``tenants``."""
    store = Store(redis, Keys("t"))
    for t in tenants:
        await store.create_tenant(t)
    return store


def tenant(tenant_id: str, *, data: bool = True, service: str = "default") -> Tenant:
    """A classic-target tenant, with training data unless told otherwise."""
    return Tenant(
        id=tenant_id,
        target=ClassicTarget(web_service_id="svc", resource_name="r"),
        data_path=f"data/{tenant_id}/v1.csv" if data else None,
        training_service=service,
    )


async def test_runs_with_data_wait_for_a_slot_and_one_step_wakes_the_dispatcher(
    redis: aioredis.Redis, pool: ArqRedis
) -> None:
    """300 ready tenants: 300 runs waiting in the bulk lane, one arq job, no due runs."""
    tenants = [tenant(f"t{i:03d}") for i in range(300)]
    store = await stored(redis, tenants)
    started = await start_batch(store, StepQueue(pool, QUEUE), tenants, services=SERVICES)

    assert started.created == 300
    _, counters = await store.get_batch(started.batch.id) or (None, {})
    assert counters.get("n:waiting_slot") == 300
    assert counters.get("n:queued", 0) == 0
    assert await redis.zcard(store.keys.waiting("default", "bulk")) == 300
    assert await redis.zcard(store.keys.due) == 0
    run_ids = await store.batch_run_ids(started.batch.id)
    runs = await store.get_runs(run_ids)
    assert {r.state for r in runs} == {RunState.WAITING_SLOT}
    assert all("queued" in r.phases and "waiting_slot" in r.phases for r in runs)
    queued = await pool.zrange(QUEUE, 0, -1)
    assert len(queued) == 1
    assert queued[0].decode() in {advance_job_id(r, 0) for r in run_ids}


async def test_runs_that_must_be_checked_get_a_first_step(
    redis: aioredis.Redis, pool: ArqRedis
) -> None:
    """No data, or a service the settings do not know: queued, with a step each, to fail."""
    tenants = [tenant("nodata", data=False), tenant("elsewhere", service="other"), tenant("ok")]
    store = await stored(redis, tenants)
    started = await start_batch(store, StepQueue(pool, QUEUE), tenants, services=SERVICES)

    runs = {
        r.tenant_id: r for r in await store.get_runs(await store.batch_run_ids(started.batch.id))
    }
    assert runs["nodata"].state is RunState.QUEUED
    assert runs["elsewhere"].state is RunState.QUEUED
    assert runs["ok"].state is RunState.WAITING_SLOT
    queued = {job.decode() for job in await pool.zrange(QUEUE, 0, -1)}
    assert queued == {advance_job_id(r.id, 0) for r in runs.values()}


async def test_without_the_services_every_run_gets_a_first_step(
    redis: aioredis.Redis, pool: ArqRedis
) -> None:
    """A caller that does not know the training services gets the checked path for all."""
    tenants = [tenant(f"t{i}") for i in range(5)]
    store = await stored(redis, tenants)
    started = await start_batch(store, StepQueue(pool, QUEUE), tenants)

    runs = await store.get_runs(await store.batch_run_ids(started.batch.id))
    assert {r.state for r in runs} == {RunState.QUEUED}
    assert await pool.zcard(QUEUE) == 5
    assert await redis.zcard(store.keys.due) == 5
