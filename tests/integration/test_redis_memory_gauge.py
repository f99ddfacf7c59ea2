"""The workers' gauge of Redis memory against a real redis-server."""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from worker.runtime import sample_redis_memory

GAUGE = "retrainq_redis_memory_used_ratio"


async def test_the_gauge_is_used_memory_over_maxmemory(redis: aioredis.Redis) -> None:
    """With maxmemory set the gauge is used_memory / maxmemory; unset, it is 0."""
    limit = 512 * 1024 * 1024
    await redis.config_set("maxmemory", limit)
    try:
        ratio = await sample_redis_memory(redis)
        used = int((await redis.info("memory"))["used_memory"])
    finally:
        await redis.config_set("maxmemory", 0)
    assert 0 < ratio < 1
    assert abs(ratio - used / limit) < 0.01
    assert REGISTRY.get_sample_value(GAUGE) == ratio
    assert await sample_redis_memory(redis) == 0.0
    assert REGISTRY.get_sample_value(GAUGE) == 0.0
