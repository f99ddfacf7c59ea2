"""B9: a scale curve — what the API, the workers and Redis cost at 1,000 to 100,000 tenants.

For each size a fresh private stack (bench/common.py: Redis with AOF everysec, Azurite, the
emulator in instant mode, the API) is started and the fleet is written straight into Redis
through the project's own writers: ``TenantRecords.create_tenant`` for each tenant, then
``--models`` deployments each (``Ledger.next_seqs`` for the run sequence a deploy is fenced
by, ``TenantRecords.record_deployment`` for the doc and the model history), so every tenant
has a deployed model and a history, as a fleet in service does. Then, in this order:

1. Redis ``used_memory`` (``INFO memory``) before and after the seeding: bytes per tenant.
2. The fleet at rest: ``GET /v1/fleet`` cold (a scan: each sample asks a different
   ``hours``, whose window start differs from the cached scan's) and cached (the same
   ``hours`` again within the cache's lifetime); the dashboard's tenant table
   (``GET /v1/tenants?limit=100``); a tenant page (``GET /v1/tenants/{id}``, its
   ``/models``, its ``/runs?limit=50``, each alone and the three at once as the page asks) for
   ``--pages`` tenants picked at random.
3. ``POST /v1/batches`` with ``all: true`` (a bulk retrain of the whole fleet), timed to its
   202, no worker running; Redis memory again (bytes per waiting run); the fleet and tenant
   reads again, now with every tenant retraining.
4. ``--workers`` workers start with the whole batch waiting; their RSS once started. The
   cost per run: CPU of each process (``/proc``) and Redis commands between the
   ``--warmup``-th and the (``--warmup`` + ``--sample``)-th finished run, divided by the runs
   finished in between, while the rest of the batch keeps waiting (one BES endpoint of
   ``--endpoint-jobs``, ``--job-seconds`` jobs).
5. The workers stop; one pass of the archiver (``worker.archive.Archiver.archive_once``,
   default retention, nothing past it yet) runs in this process: it walks every tenant, so
   its wall time and CPU (this process's and Redis's) grow with the fleet. The stack is then
   stopped, the rest of the batch unrun.

Usage: ``.venv/bin/python bench/scale_curve.py [--sizes 1000 10000 100000] [--quick]``
(``--quick``: 1,000 and 10,000). Prints one JSON line; ``--out FILE`` also writes it there
for ``bench/plots.py b9``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from common import (
    ADMIN_HEADERS,
    SHARED_DATA,
    TERMINAL,
    BenchStack,
    calls_delta,
    command_calls,
    cpu_seconds,
    machine,
    rss_mb,
    summary,
)
from pydantic import SecretStr

from worker.archive import Archiver
from worker.blobs import BlobStore, model_path
from worker.schemas import DeployedModel, Tenant, utcnow
from worker.settings import ArchiveConfig
from worker.store import Store, new_id

METRIC = "Coefficient of Determination"
CHUNK = 500  # tenants written concurrently while seeding
TIMEOUT = aiohttp.ClientTimeout(total=3600)


def log(message: str) -> None:
    """Progress on stderr (the result line goes to stdout)."""
    print(f"[b9 {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def seed(stack: BenchStack, store: Store, count: int, models: int) -> list[str]:
    """Write ``count`` tenants with ``models`` deployments each; their ids."""
    ids = [f"scale-{i:06d}" for i in range(count)]
    target = stack.target()
    for start in range(0, count, CHUNK):
        chunk = ids[start : start + CHUNK]
        await asyncio.gather(
            *(
                store.create_tenant(
                    Tenant(id=i, target=target, data_path=SHARED_DATA, data_version=1)
                )
                for i in chunk
            )
        )
        for _ in range(models):
            seqs = await store.ledger.next_seqs(chunk)
            await asyncio.gather(
                *(deploy(store, i, seq) for i, seq in zip(chunk, seqs, strict=True))
            )
    return ids


async def deploy(store: Store, tenant_id: str, seq: int) -> None:
    """Record a deployment of run ``seq`` as a finished run's deploy step records it."""
    run_id = new_id()
    model = DeployedModel(
        run_id=run_id,
        seq=seq,
        model_path=model_path(tenant_id, run_id),
        # The emulator's instant mode reports zero metrics: at 0 the sampled runs' new models
        # pass the default gate and deploy, as most retrains of a fleet in service do.
        metrics={METRIC: 0.0, "Mean Absolute Error": 0.0},
        deployed_at=utcnow(),
    )
    await store.record_deployment(tenant_id, model)


async def used_memory(redis: aioredis.Redis) -> dict[str, int]:
    """Redis's used_memory and used_memory_dataset (bytes)."""
    info = await redis.info("memory")
    return {"used": int(info["used_memory"]), "dataset": int(info["used_memory_dataset"])}


async def timed_get(http: aiohttp.ClientSession, url: str) -> tuple[float, Any]:
    """Seconds a GET took to its whole JSON body, and the body."""
    began = time.perf_counter()
    async with http.get(url, headers=ADMIN_HEADERS) as reply:
        body = await reply.json()
        if reply.status != 200:
            raise RuntimeError(f"GET {url}: {reply.status} {body}")
    return time.perf_counter() - began, body


async def timings(
    samples: int, call: Callable[[int], Awaitable[tuple[float, Any]]]
) -> tuple[list[float], Any]:
    """``samples`` sequential calls of ``call(i)``: their seconds and the last body."""
    seconds: list[float] = []
    body: Any = None
    for i in range(samples):
        took, body = await call(i)
        seconds.append(took)
    return seconds, body


def ms(values: Sequence[float]) -> dict[str, float]:
    """A latency summary in milliseconds."""
    return summary([v * 1000 for v in values], digits=1)


async def read_figures(
    stack: BenchStack, http: aiohttp.ClientSession, ids: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Fleet view cold and cached, the tenant table, a tenant page: latencies in ms."""
    api = stack.api_url
    # A different window start than the cached scan's makes the API scan again.
    cold, body = await timings(
        args.fleet_samples, lambda i: timed_get(http, f"{api}/v1/fleet?hours={24 - i}")
    )
    last = 24 - (args.fleet_samples - 1)
    cached, _ = await timings(
        args.fleet_samples * 4, lambda _i: timed_get(http, f"{api}/v1/fleet?hours={last}")
    )
    table, listing = await timings(
        args.fleet_samples, lambda _i: timed_get(http, f"{api}/v1/tenants?limit=100")
    )
    picked = random.Random(len(ids)).sample(ids, min(args.pages, len(ids)))
    parts: dict[str, list[float]] = {"tenant": [], "models": [], "runs": [], "page": []}
    for tenant_id in picked:
        path = f"{api}/v1/tenants/{tenant_id}"
        for part, url in (
            ("tenant", path),
            ("models", f"{path}/models"),
            ("runs", f"{path}/runs?limit=50"),
        ):
            parts[part].append((await timed_get(http, url))[0])
        began = time.perf_counter()
        await asyncio.gather(
            timed_get(http, path),
            timed_get(http, f"{path}/models"),
            timed_get(http, f"{path}/runs?limit=50"),
        )
        parts["page"].append(time.perf_counter() - began)
    tenants = body["tenants"]
    return {
        "fleet_cold_ms": ms(cold),
        "fleet_cached_ms": ms(cached),
        "fleet_tenants": {k: tenants[k] for k in ("total", "scanned", "by_model_state")},
        "fleet_runs_by_state": body["runs_by_state"],
        "tenant_table_ms": ms(table),
        "tenant_table_scanned": listing.get("scanned"),
        "tenant_page_ms": {part: ms(values) for part, values in parts.items()},
    }


async def finished(store: Store, batch_id: str) -> int:
    """Runs of the batch in a terminal state."""
    found = await store.get_batch(batch_id)
    counters = found[1] if found else {}
    return sum(counters.get(f"n:{state}", 0) for state in TERMINAL)


async def wait_finished(store: Store, batch_id: str, count: int, within: float) -> int:
    """Wait until at least ``count`` runs of the batch have ended; how many have."""
    deadline = time.monotonic() + within
    while (done := await finished(store, batch_id)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done}/{count} runs ended after {within} s")
        await asyncio.sleep(0.05)
    return done


async def run_sample(
    stack: BenchStack, store: Store, batch_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Start the workers with the batch waiting; CPU per run over a sample of runs."""
    stack.start_workers(args.workers)
    await asyncio.sleep(1.0)
    rss_started = [round(rss_mb(w.pid), 1) for w in stack.workers]
    first = await wait_finished(store, batch_id, args.warmup, args.timeout)
    cpu_before = stack.cpu_by_process()
    calls_before = await command_calls(store.redis)
    began = time.perf_counter()
    rss_peak = list(rss_started)
    deadline = time.monotonic() + args.timeout
    while (done := await finished(store, batch_id)) < first + args.sample:
        rss_peak = [
            max(p, round(rss_mb(w.pid), 1)) for p, w in zip(rss_peak, stack.workers, strict=True)
        ]
        if time.monotonic() > deadline:
            raise TimeoutError(f"sample: {done - first}/{args.sample} runs after {args.timeout} s")
        await asyncio.sleep(0.05)
    window = time.perf_counter() - began
    cpu_after = stack.cpu_by_process()
    by_command = calls_delta(calls_before, await command_calls(store.redis))
    calls = sum(by_command.values())
    runs = done - first
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    workers = sum(v for k, v in cpu.items() if k.startswith("worker-"))
    found = await store.get_batch(batch_id)
    counters = {k: v for k, v in (found[1] if found else {}).items() if k.startswith("n:") and v}
    return {
        "sample_runs": runs,
        "sample_window_s": round(window, 2),
        "worker_cpu_ms_per_run": round(workers / runs * 1000, 2),
        "cpu_ms_per_run": {k: round(v / runs * 1000, 2) for k, v in cpu.items()},
        "redis_commands_per_run": round(calls / runs, 1),
        "redis_top_commands_per_run": {
            name: round(n / runs, 1) for name, n in list(by_command.items())[:10]
        },
        "worker_rss_started_mb": rss_started,
        "worker_rss_peak_mb": rss_peak,
        "batch_counters_after_sample": counters,
    }


async def archive_pass(stack: BenchStack, store: Store) -> dict[str, Any]:
    """One archiver pass over the fleet (default retention, nothing past it yet), run here
    with the workers' code: its wall time and CPU, this process's and Redis's."""
    blobs = BlobStore(SecretStr(stack.blob_cs), "retrainq")
    try:
        archiver = Archiver(store, blobs, ArchiveConfig(), "bench-archiver")
        redis_pid = next(p.pid for p in stack.processes if p.name == "redis")
        redis_cpu = cpu_seconds(redis_pid)
        began, cpu = time.perf_counter(), time.process_time()
        report = await archiver.archive_once()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        redis_cpu = cpu_seconds(redis_pid) - redis_cpu
    finally:
        await blobs.close()
    return {
        "held": report.held,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "redis_cpu_s": round(redis_cpu, 2),
        "archived": report.archived + report.batches + report.models,
    }


async def measure_size(stack: BenchStack, count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one fleet size on a fresh stack."""
    redis = stack.redis()
    store = stack.store(redis)
    result: dict[str, Any] = {"tenants": count}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        await stack.upload_shared_data()
        await stack.emulator(
            http,
            "PUT",
            "/_emulator/settings",
            {"instant": True, "min_job_seconds": args.job_seconds},
        )
        empty = await used_memory(redis)
        began = time.perf_counter()
        ids = await seed(stack, store, count, args.models)
        result["seed_s"] = round(time.perf_counter() - began, 1)
        seeded = await used_memory(redis)
        result["redis_bytes_per_tenant"] = round((seeded["used"] - empty["used"]) / count)
        result["redis_dataset_bytes_per_tenant"] = round(
            (seeded["dataset"] - empty["dataset"]) / count
        )
        log(f"{count}: seeded in {result['seed_s']} s; reading the fleet at rest")
        result["at_rest"] = await read_figures(stack, http, ids, args)
        api = next(p for p in stack.processes if p.name == "api")
        api_cpu = stack.cpu_by_process()["api"]
        began = time.perf_counter()
        async with http.post(
            f"{stack.api_url}/v1/batches", json={"all": True}, headers=ADMIN_HEADERS
        ) as reply:
            batch = await reply.json()
            if reply.status != 202:
                raise RuntimeError(f"batch refused: {reply.status} {batch}")
        result["batch_post_s"] = round(time.perf_counter() - began, 3)
        result["batch_post_api_cpu_s"] = round(stack.cpu_by_process()["api"] - api_cpu, 2)
        result["batch_total"] = batch["total"]
        result["api_rss_after_batch_mb"] = round(rss_mb(api.pid), 1)
        waiting = await used_memory(redis)
        result["redis_bytes_per_waiting_run"] = round((waiting["used"] - seeded["used"]) / count)
        result["redis_used_memory_mb"] = round(waiting["used"] / 2**20, 1)
        log(f"{count}: batch accepted in {result['batch_post_s']} s; reading it waiting")
        result["batch_waiting"] = await read_figures(stack, http, ids, args)
    log(f"{count}: workers start; sampling {args.sample} runs")
    result |= await run_sample(stack, store, batch["batch_id"], args)
    for worker in stack.workers:  # the pass alone, not beside the rest of the batch
        worker.stop()
    log(f"{count}: an archiver pass over the fleet")
    result["archive_pass"] = await archive_pass(stack, store)
    await redis.aclose()
    return result


def main() -> None:
    """Parse arguments, measure each size on its own stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 tenants")
    parser.add_argument("--models", type=int, default=2, help="deployments seeded per tenant")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--endpoint-jobs", type=int, default=40)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--fleet-samples", type=int, default=5)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, help="also write the result line here")
    args = parser.parse_args()
    if args.quick:
        args.sizes = [1000, 10_000]
    sizes = []
    for count in args.sizes:
        with BenchStack(endpoint_jobs=args.endpoint_jobs, api=True) as stack:
            sizes.append(asyncio.run(measure_size(stack, count, args)))
    figures = {"args": {k: v for k, v in vars(args).items() if k != "out"}, "sizes": sizes}
    line = json.dumps({"bench": "B9 scale curve", **figures, "machine": machine()})
    print(line, flush=True)
    if args.out:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
