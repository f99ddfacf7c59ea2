"""B5: enqueue API throughput — single retrains/s with p50/p99, and accepting a 10,000-tenant batch.

Starts a private redis-server (AOF everysec, as in production) and one ``retrainq-api`` process
on free ports, seeds tenants straight into Redis through the Store, then drives the API over
loopback from this process:

- single: ``--retrains`` POST /v1/tenants/{id}/retrains, each for a different tenant (so every
  request creates a run and enqueues its first arq step), ``--concurrency`` clients.
- coalesced: the same again on the same tenants (each answers the active run).
- batch: one POST /v1/batches listing ``--batch`` tenant ids, timed to its 202; then the same
  with ``all: true``.

No worker runs: single retrains stay queued; the batch's runs (tenants with data, of the one
training service the API is configured with) are created waiting for a slot. Usage:
``.venv/bin/python bench/api_enqueue.py [--retrains 5000] [--concurrency 32] [--batch 10000]``.
Prints a JSON document with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from producer.devtools.processes import (
    ManagedProcess,
    console_script,
    ensure_redis_server,
    free_port,
    redis_argv,
)
from worker.schemas import ClassicTarget, Tenant
from worker.store import Store

ADMIN_KEY = "bench-admin-key-0123456789"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def seed(store: Store, prefix: str, count: int) -> list[str]:
    """Create ``count`` tenants with data; their ids."""
    ids = [f"{prefix}-{i:05d}" for i in range(count)]
    target = ClassicTarget(web_service_id="ws", resource_name="model")
    for start in range(0, count, 500):
        await asyncio.gather(
            *(
                store.create_tenant(Tenant(id=i, target=target, data_path=f"data/{i}/v1.csv"))
                for i in ids[start : start + 500]
            )
        )
    return ids


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def retrain_all(
    session: aiohttp.ClientSession, base: str, ids: list[str], concurrency: int
) -> dict[str, Any]:
    """POST a retrain for every id with ``concurrency`` clients; rate and latencies."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pending = iter(ids)

    async def client() -> None:
        for tenant_id in pending:
            began = time.perf_counter()
            async with session.post(f"{base}/v1/tenants/{tenant_id}/retrains") as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(ids),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(ids) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "statuses": statuses,
    }


async def timed_batch(
    session: aiohttp.ClientSession, base: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST one batch; seconds to the 202 and what it accepted."""
    began = time.perf_counter()
    async with session.post(f"{base}/v1/batches", json=body) as response:
        answer = await response.json()
        status = response.status
    elapsed = time.perf_counter() - began
    return {"status": status, "seconds": round(elapsed, 3), "runs": answer.get("total")}


async def bench(args: argparse.Namespace, base: str, redis_url: str) -> dict[str, Any]:
    """Run the three measurements against the served API."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis)
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(
        headers=HEADERS, timeout=timeout, connector=connector
    ) as session:
        ids = await seed(store, "single", args.retrains)
        await retrain_all(session, base, ids[: min(200, len(ids))], args.concurrency)  # warm up
        await redis.flushdb()
        ids = await seed(store, "single", args.retrains)
        results["single_retrain"] = await retrain_all(session, base, ids, args.concurrency)
        results["coalesced_retrain"] = await retrain_all(session, base, ids, args.concurrency)
        await redis.flushdb()
        ids = await seed(store, "bulk", args.batch)
        results["batch_listed"] = await timed_batch(session, base, {"tenant_ids": ids})
        results["arq_jobs_after_batch"] = await redis.zcard("retrainq:queue")
        await redis.flushdb()
        await seed(store, "bulk", args.batch)
        results["batch_all"] = await timed_batch(session, base, {"all": True})
    await redis.aclose()
    return results


def main() -> None:
    """Start Redis and one API process, measure, print JSON, stop both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrains", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    redis_port, api_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    server = ManagedProcess(
        "redis",
        redis_argv(ensure_redis_server(), redis_port, work, aof=True),
        redis_port,
        work / "redis.log",
    )
    env = {
        "RETRAINQ_REDIS__URL": redis_url,
        "RETRAINQ_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
        "RETRAINQ_RATE_LIMIT_REQUESTS": "1000000",
        "RETRAINQ_LOG__FORMAT": "json",
        "RETRAINQ_LOG__LEVEL": "WARNING",
        # No blob storage is needed for enqueueing; the API only warns that it is absent.
        "RETRAINQ_BLOB__CONNECTION_STRING": "UseDevelopmentStorage=true",
        # The API knows the training service (as a deployed one does); no worker calls it here.
        "RETRAINQ_TRAINING_SERVICES": json.dumps(
            {"default": {"endpoints": [{"url": "http://127.0.0.1:9/bes", "api_key": "unused"}]}}
        ),
    }
    api = ManagedProcess(
        "api",
        [console_script("retrainq-api"), "--port", str(api_port)],
        api_port,
        work / "api.log",
        env=env,
        cwd=work,
    )
    server.start()
    try:
        api.start(timeout=60)
        try:
            results = asyncio.run(bench(args, f"http://127.0.0.1:{api_port}", redis_url))
        finally:
            api.stop()
    finally:
        server.stop()
    results["machine"] = {
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "redis-py": version("redis"),
        "arq": version("arq"),
        "cpus": __import__("os").cpu_count(),
        "args": vars(args),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
