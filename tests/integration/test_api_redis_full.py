"""A Redis that refuses writes (maxmemory reached): the API answers 503, never a 500, and
the archiver can still free it."""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import SecretStr

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from tests.integration.test_archive import LATER, finished_runs
from worker.archive import Archiver
from worker.blobs import BlobStore
from worker.schemas import utcnow
from worker.settings import ArchiveConfig
from worker.store import Store


async def test_a_full_redis_answers_503_with_retry_after_and_records_nothing(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Writes refused with OOM: 503, Retry-After, a problem saying Redis is full, no run
    recorded; once Redis has room again the same request is accepted."""
    await onboard(api, "acme")
    runs_before = await redis.zcard("retrainq:tenant:acme:runs")
    await redis.config_set("maxmemory", 1)  # every write is now over the limit
    try:
        refused = await api.post("/v1/tenants/acme/retrains", headers=ADMIN)
        body = await refused.json()
    finally:
        await redis.config_set("maxmemory", 0)
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "60"
    assert refused.content_type == "application/problem+json"
    assert body["code"] == "redis_full"
    assert "full" in body["detail"]
    assert await redis.zcard("retrainq:tenant:acme:runs") == runs_before
    accepted = await api.post("/v1/tenants/acme/retrains", headers=ADMIN)
    assert accepted.status == 202, await accepted.text()


async def test_the_archiver_frees_a_full_redis_and_writes_are_accepted_again(
    api: ApiTestClient, redis: aioredis.Redis, blob_connection_string: str
) -> None:
    """Redis full of finished runs refuses the API's writes; the archiver still runs (its
    scripts may run when Redis is full), moves the runs out, and the API accepts again."""
    await onboard(api, "acme")
    store = Store(redis)
    runs = await finished_runs(store, "acme", 300)
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used - 32 * 1024)
    try:
        refused = await api.post("/v1/tenants/acme/retrains", headers=ADMIN)
        assert refused.status == 503
        async with BlobStore(SecretStr(blob_connection_string), "api-tests") as blobs:
            await blobs.ensure_container()
            archiver = Archiver(store, blobs, ArchiveConfig(keep_runs=1), owner="test-worker")
            done = await archiver.archive_once(utcnow() + LATER)
        accepted = await api.post("/v1/tenants/acme/retrains", headers=ADMIN)
    finally:
        await redis.config_set("maxmemory", 0)
    assert done.archived == len(runs) - 1
    assert accepted.status == 202, await accepted.text()
