"""One archiver pass in its own process, with one crash point enabled (for the archive tests).

``python -m tests.chaos.archive_pass REDIS_URL BLOB_CONNECTION CONTAINER PREFIX POINT`` runs
``archive_once`` as of 40 days from now with ``keep_runs=1`` and exits 0, or exits 137 at the
point (once per part, like a worker's failpoint once per run).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import redis.asyncio as aioredis
from pydantic import SecretStr

from worker.archive import Archiver
from worker.blobs import BlobStore
from worker.failpoints import Failpoints
from worker.keys import Keys
from worker.records import utcnow
from worker.settings import ArchiveConfig
from worker.store import Store

OWNER = "archive-test"
LATER = timedelta(days=40)


async def main(redis_url: str, connection: str, container: str, prefix: str, point: str) -> None:
    """Run one pass and close the clients."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(prefix)
    try:
        async with BlobStore(SecretStr(connection), container) as blobs:
            archiver = Archiver(
                Store(redis, keys),
                blobs,
                ArchiveConfig(keep_runs=1, min_part_runs=1),
                OWNER,
                Failpoints([point], redis, keys),
            )
            await archiver.archive_once(utcnow() + LATER)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
