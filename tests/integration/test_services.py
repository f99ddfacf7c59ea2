"""The test services themselves: redis-server restarts keep AOF data, Azurite stores blobs."""

from __future__ import annotations

import redis.asyncio as aioredis
from azure.storage.blob.aio import BlobServiceClient

from producer.devtools.processes import ManagedProcess


async def test_redis_restart_keeps_acknowledged_writes(
    redis: aioredis.Redis, redis_server: ManagedProcess, redis_url: str
) -> None:
    """A write acknowledged before a restart is still there after it (AOF is on)."""
    await redis.set("probe", "kept")
    await redis.bgrewriteaof()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    await redis.aclose()
    redis_server.restart()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.get("probe") == "kept"
    finally:
        await client.aclose()


async def test_azurite_round_trips_a_blob(blob_connection_string: str) -> None:
    """A blob uploaded to Azurite reads back byte for byte."""
    async with BlobServiceClient.from_connection_string(
        blob_connection_string, retry_total=0
    ) as service:
        container = service.get_container_client("probe")
        if not await container.exists():
            await container.create_container()
        await container.upload_blob("a/b.csv", b"x,y\n1,2\n", overwrite=True)
        downloaded = await (await container.download_blob("a/b.csv")).readall()
    assert downloaded == b"x,y\n1,2\n"
