"""A Redis that refuses writes (maxmemory reached) makes the API answer 503, never a 500."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard


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
