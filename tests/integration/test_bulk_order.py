"""The bulk lane in a real Redis: longest expected job first from recorded durations, the
interactive lane first, one active run per tenant, and FIFO when asked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from arq.connections import RedisSettings, create_pool
from pydantic import SecretStr

from worker.bulk import start_batch
from worker.bulk_order import BulkOrder
from worker.keys import Keys
from worker.parking import DurationEstimates, ParkedRuns
from worker.queue import StepQueue
from worker.redisio import reply
from worker.run.slots import Slots
from worker.schemas import ClassicTarget, Lane, Tenant
from worker.serialization import deserialize, serialize
from worker.settings import BesEndpointConfig, TrainingServiceConfig
from worker.store import Store

KEYS = Keys("t")
QUEUE = "t:queue"
SERVICES = {
    "default": TrainingServiceConfig(
        endpoints=[
            BesEndpointConfig(
                url="http://127.0.0.1:9/bes", api_key=SecretStr("k"), max_concurrent_jobs=1
            )
        ],
        max_running=1,
        interactive_reserve=0,
    )
}
# Durations each tenant's past jobs recorded, oldest first (the last three count).
HISTORY = {
    "t-a": [5.0],
    "t-b": [80.0, 2.0, 3.0, 2.5],  # one long job long ago: its last three say 2.5
    "t-c": [40.0],
    "t-d": [12.0, 14.0, 13.0],
    "t-e": [],  # no history: the service's median of recent jobs
}


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[StepQueue]:
    """The step queue on the test Redis (the batch's kick steps land there, unrun)."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE,
    )
    yield StepQueue(pool, QUEUE)
    await pool.aclose()


def tenant(tenant_id: str) -> Tenant:
    """A classic-target tenant with data on the default training service."""
    return Tenant(
        id=tenant_id,
        target=ClassicTarget(web_service_id="svc", resource_name="r"),
        data_path=f"data/{tenant_id}/v1.csv",
    )


async def fleet(redis: aioredis.Redis, order: BulkOrder) -> tuple[Store, list[Tenant]]:
    """The tenants of HISTORY, stored, with their recorded durations."""
    store = Store(redis, KEYS, bulk_order=order)
    parked = ParkedRuns(redis, KEYS)
    tenants = [tenant(t) for t in HISTORY]
    for t in tenants:
        await store.create_tenant(t)
        for seconds in HISTORY[t.id]:
            await parked.record_duration("default", seconds, t.id)
    return store, tenants


async def grant_order(store: Store, slots: Slots) -> list[str]:
    """Tenants in the order the dispatcher grants their runs, one slot at a time."""
    order = []
    while granted := await slots.dispatch("default"):
        [grant] = granted
        run = await store.get_run(grant.run_id)
        order.append(run.tenant_id if run else grant.run_id)
        await slots.release("default", grant.run_id)
    return order


async def test_bulk_runs_are_granted_longest_expected_first(
    redis: aioredis.Redis, queue: StepQueue
) -> None:
    """A bulk batch is granted in descending order of each tenant's recent median; a tenant
    without history expects the service's median; interactive runs still go first."""
    store, tenants = await fleet(redis, "longest_first")
    assert await reply(redis.hget(KEYS.tenant_durations("default"), "t-b")) == "2.5,3.0,2.0"
    slots = Slots(redis, KEYS, store.ledger, SERVICES, bulk_every=0)
    started = await start_batch(store, queue, tenants, services=SERVICES)
    assert started.created == len(tenants)
    await store.ledger.ensure_waiting("default", Lane.INTERACTIVE, "urgent")

    # The service's recent jobs: 5, 80, 2, 3, 2.5, 40, 12, 14, 13 → median 12 for t-e.
    assert await grant_order(store, slots) == ["urgent", "t-c", "t-d", "t-e", "t-a", "t-b"]


async def test_one_active_run_per_tenant_holds_with_the_order(
    redis: aioredis.Redis, queue: StepQueue
) -> None:
    """A second batch while the first waits creates nothing: one waiting run per tenant."""
    store, tenants = await fleet(redis, "longest_first")
    first = await start_batch(store, queue, tenants, services=SERVICES)
    again = await start_batch(store, queue, tenants, services=SERVICES)
    assert (first.created, again.created, again.coalesced) == (5, 0, 5)
    assert await redis.zcard(KEYS.waiting("default", "bulk")) == 5


async def test_fifo_ignores_history(redis: aioredis.Redis, queue: StepQueue) -> None:
    """With bulk_order fifo every run of a batch waits under its creation time alone."""
    store, tenants = await fleet(redis, "fifo")
    await start_batch(store, queue, tenants, services=SERVICES)
    scores = await redis.zrange(KEYS.waiting("default", "bulk"), 0, -1, withscores=True)
    assert len(scores) == 5
    assert len({score for _, score in scores}) == 1


async def test_polls_expect_the_tenants_own_shortest_recent_job(redis: aioredis.Redis) -> None:
    """A tenant's job is expected to outlast the shortest of its last jobs; a tenant without
    history gets the service's estimate (a low quantile of its recent jobs)."""
    parked = ParkedRuns(redis, KEYS)
    for seconds in (30.0, 25.0, 40.0):
        await parked.record_duration("default", seconds, "t-long")
    for i in range(10):
        await parked.record_duration("default", 4.0 + i, f"t-{i}")
    estimates = DurationEstimates(parked)
    assert await estimates.expected("default", "t-long") == 25.0
    service = await estimates.expected("default")
    assert service is not None
    assert service < 25.0
    assert await estimates.expected("default", "t-new") == service
