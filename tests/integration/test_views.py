"""The dashboard's fleet route and the workers' gauges read the same numbers from the same
Redis state (``worker/views.py``), against a real redis-server and the real API app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis, RedisSettings, create_pool
from prometheus_client import REGISTRY
from pydantic import SecretStr

from producer.api.settings import ApiSettings
from tests.integration.conftest_api import ADMIN, make_settings, onboard
from worker.azureml.arm import StaticToken
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.redisio import reply
from worker.runtime import WorkerContext, build_deps, sample_gauges
from worker.settings import WorkerSettings
from worker.steps import Stepper
from worker.store import Store
from worker.views import FleetViews

KEYS = Keys()
MINUTE_MS = 60_000
SERVICES: dict[str, Any] = {
    "svc-a": {
        "max_running": 3,
        "endpoints": [
            {"url": "http://127.0.0.1:9/a0", "api_key": "k", "max_concurrent_jobs": 2},
            {"url": "http://127.0.0.1:9/a1", "api_key": "k", "max_concurrent_jobs": 2},
        ],
    },
    "svc-b": {
        "max_running": 5,
        "endpoints": [{"url": "http://127.0.0.1:9/b0", "api_key": "k"}],
    },
}


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str) -> ApiSettings:
    """The API under test knows both training services."""
    return make_settings(redis_url, blob_connection_string, training_services=SERVICES)


@pytest.fixture
async def worker_ctx(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str
) -> AsyncIterator[WorkerContext]:
    """A worker's context as ``on_startup`` wires it, on the same Redis and services."""
    settings = WorkerSettings(
        _env_file=None,
        redis={"url": redis_url},
        blob={"connection_string": blob_connection_string, "container": "views-tests"},
        training_services=SERVICES,
    )
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(redis_url))
    async with aiohttp.ClientSession() as session:
        blobs = BlobStore.from_config(settings.blob)
        deps = build_deps(settings, redis, pool, session, blobs, StaticToken(SecretStr("")))
        yield WorkerContext(stepper=Stepper(deps), redis=pool)
        await blobs.close()
    await pool.aclose()


async def seed(redis: aioredis.Redis) -> None:
    """Leases live and lapsed, runs waiting in both lanes, a throttle, a deferred step and
    parked runs; lapsed leases are a minute old, so no sweep or clock tick changes a count."""
    now = int(time.time() * 1000)
    live, lapsed = now + 10 * MINUTE_MS, now - MINUTE_MS
    await redis.zadd(KEYS.slots("svc-a"), {"r1": live, "r2": live, "r3": lapsed})
    await redis.zadd(KEYS.endpoint_slots("svc-a", 0), {"r1": live, "r3": lapsed})
    await redis.zadd(KEYS.endpoint_slots("svc-a", 1), {"r2": live})
    await redis.zadd(KEYS.slots("svc-b"), {"r4": lapsed, "r5": lapsed})
    await redis.zadd(KEYS.endpoint_slots("svc-b", 0), {"r4": lapsed, "r5": lapsed})
    await redis.zadd(KEYS.waiting("svc-a", "interactive"), {"w1": now})
    await redis.zadd(KEYS.waiting("svc-b", "bulk"), {"w2": now, "w3": now})
    await redis.set(KEYS.throttle("svc-b"), "1", px=10 * MINUTE_MS)
    await redis.zadd("retrainq:queue", {"job-later": now + 10 * MINUTE_MS})
    await redis.zadd(KEYS.polls, {"p1": live, "p2": lapsed, "p3": live})


def gauge(name: str, **labels: str) -> float | None:
    """A worker metric's current value."""
    return REGISTRY.get_sample_value(name, labels)


async def test_the_fleet_route_and_the_gauges_agree_on_one_redis_state(
    api: TestClient[web.Request, web.Application], redis: aioredis.Redis, worker_ctx: WorkerContext
) -> None:
    """Slots in use (leases not expired), runs waiting and the arq backlog are the same on
    ``/v1/fleet`` as on the worker's gauges, and are the seeded numbers."""
    await onboard(api, "tenant-a", data_path="data/tenant-a/a.csv", training_service="svc-a")
    # its first step is on arq's queue, ready
    await seed(redis)

    response = await api.get("/v1/fleet", headers=ADMIN)
    assert response.status == 200, await response.text()
    fleet: dict[str, Any] = await response.json()
    await sample_gauges(worker_ctx)

    in_use = {s["name"]: s["slots_in_use"] for s in fleet["services"]}
    assert in_use == {"svc-a": 2, "svc-b": 0}  # r3, r4 and r5 hold lapsed leases
    for name, count in in_use.items():
        assert gauge("retrainq_slots_in_use", service=name) == count
    assert gauge("retrainq_bes_jobs_in_flight") == sum(in_use.values())
    assert fleet["backlog"] == {"ready": 1, "deferred": 1, "waiting_slot": 3}
    for kind, count in fleet["backlog"].items():
        assert gauge("retrainq_backlog", kind=kind) == count
    assert gauge("retrainq_backlog", kind="parked") == 3
    waiting = {s["name"]: (s["waiting_interactive"], s["waiting_bulk"]) for s in fleet["services"]}
    assert waiting == {"svc-a": (1, 0), "svc-b": (0, 2)}
    assert {s["name"]: s["max_running"] for s in fleet["services"]} == {"svc-a": 3, "svc-b": 5}
    assert {s["name"]: s["throttled"] for s in fleet["services"]} == {
        "svc-a": False,
        "svc-b": True,
    }


async def test_the_load_view_counts_endpoints_and_the_throttle_left(
    redis: aioredis.Redis, api_settings: ApiSettings
) -> None:
    """Each endpoint's live leases against its own cap; a throttle's time left from its TTL."""
    await seed(redis)
    load = await FleetViews.of(Store(redis, KEYS), api_settings).load()
    a, b = load.services
    assert [(e.index, e.in_use, e.cap) for e in a.endpoints] == [(0, 1, 2), (1, 1, 2)]
    assert [(e.index, e.in_use, e.cap) for e in b.endpoints] == [(0, 0, 40)]
    assert a.throttle_seconds is None
    assert b.throttle_seconds is not None
    assert 0 < b.throttle_seconds <= 600


async def test_batches_are_listed_newest_first_with_their_sizes(
    redis: aioredis.Redis, api_settings: ApiSettings
) -> None:
    """The batch reads behind ``/v1/batches``: newest first, the total, each batch's runs."""
    await redis.zadd(KEYS.batches, {"b-old": 1.0, "b-new": 2.0, "b-mid": 1.5})
    await reply(redis.rpush(KEYS.batch_runs("b-old"), "r1", "r2"))
    await reply(redis.rpush(KEYS.batch_runs("b-new"), "r3"))

    views = FleetViews.of(Store(redis, KEYS), api_settings)
    assert await views.recent_batches(2) == (["b-new", "b-mid"], 3)
    assert [await views.batch_size(b) for b in ("b-old", "b-new", "b-mid")] == [2, 1, 0]
