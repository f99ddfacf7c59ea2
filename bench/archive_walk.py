"""One archiver pass over N tenants written straight into Redis: time and Redis calls.

Starts a private redis-server, writes N tenant records with three finished run ids each
(nothing past retention, like a healthy fleet), then times one ``Archiver.archive_once``
and counts the commands it sent (``INFO commandstats``: each pipelined command counts) and
the round trips (writes of a command or a pipeline to the socket, counted client-side).
No blob is touched: nothing is archived. Usage:

    .venv/bin/python bench/archive_walk.py --tenants 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from common import calls_delta, command_calls
from pydantic import SecretStr
from redis.asyncio.connection import AbstractConnection

from producer.devtools.processes import (
    ManagedProcess,
    azurite_connection_string,
    ensure_redis_server,
    free_port,
    redis_argv,
    redis_ready,
)
from worker.archive import Archiver
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.schemas import ClassicTarget, Tenant
from worker.settings import ArchiveConfig
from worker.store import Store

WRITE_CHUNK = 1000
ROUND_TRIPS = [0]


def count_round_trips() -> None:
    """Count every command or pipeline this process sends to Redis."""
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        ROUND_TRIPS[0] += 1
        await send(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


async def fill(redis: aioredis.Redis, keys: Keys, count: int) -> None:
    """``count`` tenants, each with three run ids in its run set (no run records needed:
    all are within ``keep_runs``)."""
    target = ClassicTarget(web_service_id="svc", resource_name="Model [trained model]")
    for start in range(0, count, WRITE_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(count, start + WRITE_CHUNK)):
                tenant_id = f"t{i:06d}"
                doc = Tenant(id=tenant_id, target=target).model_dump_json()
                pipe.hset(keys.tenant(tenant_id), mapping={"doc": doc, "version": "1"})
                pipe.zadd(keys.tenants, {tenant_id: i})
                pipe.zadd(keys.tenant_runs(tenant_id), {f"r{i:06d}{n}": n for n in range(3)})
            await pipe.execute()


async def measure(port: int, count: int) -> dict[str, float | int]:
    redis = aioredis.Redis(port=port, decode_responses=True)
    keys = Keys("bench")
    await fill(redis, keys, count)
    store = Store(redis, keys)
    connection = SecretStr(azurite_connection_string(free_port()))  # never reached
    async with BlobStore(connection, "bench-archive") as blobs:
        archiver = Archiver(store, blobs, ArchiveConfig(), "bench-archiver")
        before = await command_calls(redis)
        trips = ROUND_TRIPS[0]
        started = time.perf_counter()
        report = await archiver.archive_once()
        seconds = time.perf_counter() - started
        trips = ROUND_TRIPS[0] - trips
        after = await command_calls(redis)
    await redis.aclose()
    calls = calls_delta(before, after)
    calls.pop("info", None)
    return {
        "tenants": count,
        "seconds": round(seconds, 2),
        "redis_calls": sum(calls.values()),
        "calls_per_tenant": round(sum(calls.values()) / count, 2),
        "round_trips": trips,
        "held": report.held,
        "archived": report.archived,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args()
    count_round_trips()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = ManagedProcess(
            name="redis-server",
            argv=redis_argv(ensure_redis_server(), port, Path(tmp), aof=True),
            port=port,
            log_path=Path(tmp) / "redis.log",
            ready=redis_ready,
        )
        server.start()
        try:
            print(json.dumps(asyncio.run(measure(port, args.tenants))))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
