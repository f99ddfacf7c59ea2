"""M1: Redis bytes per tenant at steady state with the default retention, from measurement.

Starts a private redis-server (no AOF, no maxmemory) and Azurite, onboards ``--tenants``
tenants through the project's ``Store``, then simulates ``--nights`` nights of nightly
retrains in compressed time: each night every tenant gets one run, written straight into
Redis by the ledger (``Ledger.create``) as a finished run whose record went through the
classic path's transitions (queued, waiting, submitting with a recorded job, training,
evaluating with metrics and a gate decision, deploying, succeeded), stamped with that night's
simulated time, and its model is recorded as deployed (``record_deployment``, which also
pushes the model-history entry). Every ``--archive-every`` nights (default: every night) the
archiver runs one pass as of that night (``Archiver.archive_once(now)``, the default
``ArchiveConfig``: keep 50 runs, 30 days, 5 deployed versions, parts of at least 7 runs;
parts go to Azurite).

Reported per night: ``used_memory`` (INFO memory, after the night's pass if any) and what
the keys hold (``MEMORY USAGE`` of every key of a sample of tenants, the archive index);
at the end: bytes per tenant at steady state (used memory above the empty Redis over the
tenants, split into what stays flat — tenant record, its runs, run set, model history — and
the archive index, which grows by one entry per archived run), archive bytes per run, the
archiver's throughput and CPU, and a PNG of the curve (``bench/plots/m1_redis_memory.png``).

Usage: ``.venv/bin/python bench/redis_sizing.py [--tenants 10000] [--nights 70]
[--archive-every 7] [--quick]`` (``--quick``: 1,000 tenants).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from common import emit
from pydantic import SecretStr

from producer.devtools.processes import (
    ManagedProcess,
    azurite_argv,
    azurite_connection_string,
    ensure_azurite,
    ensure_redis_server,
    free_port,
    redis_argv,
    redis_ready,
)
from worker.archive import Archiver
from worker.archive_blobs import ArchiveBlobs
from worker.archive_parts import ARCHIVE_PREFIX
from worker.blobs import BlobStore, evaluation_path, model_path
from worker.evaluate import Decision
from worker.keys import Keys
from worker.run import model as m
from worker.run.ledger import NewRun, Placement
from worker.schemas import BesOutputs, ClassicTarget, DeployedModel, Lane, Run, RunState, Tenant
from worker.settings import ArchiveConfig
from worker.store import Store, new_id

PLOT = Path(__file__).resolve().parent / "plots" / "m1_redis_memory.png"
CHUNK = 1000
CONCURRENCY = 64
SAMPLE_TENANTS = 50
START = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)  # the first simulated night, 02:00 UTC
TARGET = ClassicTarget(
    web_service_id="bikerental-predictive-01", resource_name="Bike Rental [trained model]"
)
DECISION = Decision(
    accepted=True,
    reason="better than the deployed model (0.2% lower)",
    metric="rmse",
    value=41.23,
    baseline=41.31,
)
METRICS = {"rmse": 41.23, "mae": 30.12, "r2": 0.8123, "relative_absolute_error": 0.3377}


def tenant_ids(count: int) -> list[str]:
    """``shop-000001``, ... (ids of the documented fleet's length)."""
    return [f"shop-{index:06d}" for index in range(1, count + 1)]


def nightly_run(tenant_id: str, seq: int, night: datetime) -> tuple[Run, Run]:
    """A nightly run of ``tenant_id`` as created (queued) and as it stands just before its
    deploy ends (every phase stamped, its job, metrics and decision recorded)."""
    run_id = new_id()
    created = night + timedelta(seconds=seq % 600)
    queued = Run(
        id=run_id,
        tenant_id=tenant_id,
        seq=seq,
        lane=Lane.BULK,
        reason="nightly",
        training_service="default",
        data_path=f"data/{tenant_id}/v1.csv",
        data_version=1,
        outputs=BesOutputs(
            model_path=model_path(tenant_id, run_id),
            evaluation_path=evaluation_path(tenant_id, run_id),
        ),
        created_at=created,
        updated_at=created,
        deadline_at=created + timedelta(hours=6),
        state=RunState.QUEUED,
        phases={RunState.QUEUED.value: created},
    )
    steps: list[tuple[float, m.Transition]] = [
        (1, m.Waiting()),
        (30, m.Granted(bes_endpoint=seq % 5)),
        (31, m.SubmitIntent(submit_attempts=1, orphaned_submissions=0)),
        (32, m.JobCreated(bes_job_id=uuid.uuid4().hex)),
        (33, m.JobStarted()),
        (333, m.JobFinished()),
        (334, m.Judged(metrics=METRICS, decision=DECISION)),
    ]
    run = queued
    for seconds, transition in steps:
        run = m.applied(run, (transition,), created + timedelta(seconds=seconds))
    # The stored version is the created one's: the deploy's save is its compare-and-set.
    return queued, run.model_copy(update={"version": queued.version})


DEPLOY_SECONDS = 380


async def onboard(store: Store, ids: list[str]) -> None:
    """The tenants, as onboarding stores them (hashed key, uploaded data, schedule-less)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(tenant_id: str) -> None:
        async with gate:
            await store.create_tenant(
                Tenant(
                    id=tenant_id,
                    display_name=f"Rental shop {tenant_id[-6:]}",
                    target=TARGET,
                    data_path=f"data/{tenant_id}/v1.csv",
                    data_version=1,
                    endpoint_name=f"rq-{tenant_id}",
                    api_key_hashes=[uuid.uuid4().hex + uuid.uuid4().hex],
                    created_at=START - timedelta(days=1),
                )
            )
            await store.register_api_key(uuid.uuid4().hex + uuid.uuid4().hex, tenant_id)

    await asyncio.gather(*(one(t) for t in ids))


async def one_night(store: Store, ids: list[str], night: datetime) -> None:
    """Every tenant's nightly run, created by the ledger, saved finished (the deploy's
    transition, with no step pending) and its model recorded as deployed."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def finish(run: Run) -> None:
        async with gate:
            ended = run.created_at + timedelta(seconds=DEPLOY_SECONDS)
            done = await store.ledger.apply(run, (m.Deployed(deployed=True),), ended, Placement())
            model = DeployedModel(
                run_id=done.id,
                seq=done.seq,
                model_path=done.outputs.model_path,
                metrics=METRICS,
                deployed_at=ended,
            )
            await store.record_deployment(done.tenant_id, model)

    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        seqs = await store.ledger.next_seqs(chunk)
        pairs = [nightly_run(t, seq, night) for t, seq in zip(chunk, seqs, strict=True)]
        outcomes = await store.ledger.create([NewRun(queued) for queued, _ in pairs])
        assert all(status == 1 for status, _ in outcomes), outcomes[:3]
        await asyncio.gather(*(finish(deploying) for _, deploying in pairs))


async def key_bytes(redis: aioredis.Redis, keys: list[str]) -> int:
    """``MEMORY USAGE`` summed over ``keys`` (SAMPLES 0: every element counted)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        sizes = await pipe.execute()
    return sum(int(size or 0) for size in sizes)


async def tenant_bytes(store: Store, ids: list[str]) -> dict[str, float]:
    """Bytes per tenant of a sample, by kind of key (the tenant's own keys)."""
    keys = store.keys
    record = runs = run_set = history = 0
    for tenant_id in ids:
        run_ids = await store.tenant_run_ids(tenant_id, 0, 100_000)
        record += await key_bytes(store.redis, [keys.tenant(tenant_id)])
        runs += await key_bytes(store.redis, [keys.run(r) for r in run_ids])
        run_set += await key_bytes(store.redis, [keys.tenant_runs(tenant_id)])
        history += await key_bytes(store.redis, [keys.tenant_models(tenant_id)])
    n = len(ids)
    return {
        "tenant_record": record / n,
        "runs": runs / n,
        "run_set": run_set / n,
        "model_history": history / n,
        "runs_kept": len(await store.tenant_run_ids(ids[0], 0, 100_000)),
    }


async def index_bytes_of(store: Store) -> int:
    """Bytes of the archive index: its buckets and the part names."""
    pattern = f"{store.keys.archive_index_prefix()}*"
    buckets = [key async for key in store.redis.scan_iter(match=pattern, count=1000)]
    buckets = [key for key in buckets if not key.endswith(":batches")]
    return await key_bytes(store.redis, [*buckets, store.keys.archive_parts])


async def used_memory(redis: aioredis.Redis) -> int:
    """INFO memory's ``used_memory``."""
    return int((await redis.info("memory"))["used_memory"])


def plot(curve: list[dict[str, Any]], tenants: int, path: Path) -> None:
    """The curve: used memory per night, and the archive index's share of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nights = [row["night"] for row in curve]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(nights, [row["used_mb"] for row in curve], label="Redis used_memory")
    ax.plot(nights, [row["index_mb"] for row in curve], label="of which the archive index")
    ax.set_xlabel("night (simulated)")
    ax.set_ylabel("MB")
    ax.set_title(f"Redis memory, {tenants:,} tenants retrained nightly, default retention")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def measure(args: argparse.Namespace, redis_url: str, blob_cs: str) -> dict[str, Any]:
    """Onboard, run the nights with the archiver, and measure."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis, Keys("retrainq"))
    ids = tenant_ids(args.tenants)
    empty = await used_memory(redis)
    await onboard(store, ids)
    onboarded = await used_memory(redis)
    # One pass here stands for a week of the archiver's passes (every 5 minutes, 5,000 runs
    # each): it may move a week of the fleet's runs at once.
    config = ArchiveConfig(max_runs_per_pass=1_000_000)
    curve: list[dict[str, Any]] = []
    archive_seconds = archive_cpu = 0.0
    archived = 0
    async with BlobStore(SecretStr(blob_cs), "retrainq") as blobs:
        await blobs.ensure_container()
        archiver = Archiver(store, blobs, config, owner="bench")
        for night_index in range(args.nights):
            night = START + timedelta(days=night_index)
            await one_night(store, ids, night)
            if (night_index + 1) % args.archive_every == 0:
                cpu = resource.getrusage(resource.RUSAGE_SELF)
                began = time.monotonic()
                report = await archiver.archive_once(night + timedelta(hours=3))
                archive_seconds += time.monotonic() - began
                after = resource.getrusage(resource.RUSAGE_SELF)
                archive_cpu += (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
                archived += report.archived
            used = await used_memory(redis)
            index = await index_bytes_of(store)
            row = {
                "night": night_index + 1,
                "used_mb": round(used / 1e6, 2),
                "index_mb": round(index / 1e6, 2),
                "runs_in_redis": sum(
                    [int(await redis.zcard(store.keys.tenant_runs(t))) for t in ids[:10]]
                )
                / 10,
            }
            curve.append(row)
            print(row, flush=True)
        parts = await ArchiveBlobs(blobs).paths(f"{ARCHIVE_PREFIX}/")
        part_bytes = 0
        for path in parts[:200]:
            part_bytes += len(await blobs.download(path))
    final = await used_memory(redis)
    index_bytes = await index_bytes_of(store)
    index_entries = archived
    parts_named = int(await redis.hlen(store.keys.archive_parts))
    sample = await tenant_bytes(store, ids[:: max(1, len(ids) // SAMPLE_TENANTS)][:SAMPLE_TENANTS])
    own = sum(v for k, v in sample.items() if k != "runs_kept")
    await redis.aclose()
    sampled_parts = min(len(parts), 200)
    runs_per_part = archived / len(parts) if parts else 0.0
    plot(curve, args.tenants, PLOT)
    steady = (final - empty - index_bytes) / args.tenants
    return {
        "tenants": args.tenants,
        "nights": args.nights,
        "archive_every_nights": args.archive_every,
        "runs_written": args.tenants * args.nights,
        "runs_archived": archived,
        "redis_used_memory_mb": {
            "empty": round(empty / 1e6, 2),
            "onboarded": round(onboarded / 1e6, 2),
            "final": round(final / 1e6, 2),
        },
        "bytes_per_tenant_steady_state": round(steady),
        "bytes_per_tenant_own_keys": {k: round(v) for k, v in sample.items()},
        "bytes_per_tenant_own_keys_total": round(own),
        "archive_index": {
            "entries": index_entries,
            "bytes": index_bytes,
            "parts_named": parts_named,
            "bytes_per_archived_run": round(index_bytes / index_entries, 1) if index_entries else 0,
        },
        "archive_parts": len(parts),
        "runs_per_part": round(runs_per_part, 2),
        "archive_bytes_per_run": round(part_bytes / (runs_per_part * sampled_parts), 1)
        if sampled_parts and runs_per_part
        else None,
        "archiver_runs_per_second": round(archived / archive_seconds, 1)
        if archive_seconds
        else None,
        "archiver_cpu_seconds_per_1000_runs": round(1000 * archive_cpu / archived, 3)
        if archived
        else None,
        "curve": curve,
        "plot": str(PLOT.relative_to(PLOT.parents[2])),
    }


def main() -> None:
    """Parse arguments, start Redis and Azurite, measure, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--nights", type=int, default=70)
    parser.add_argument("--archive-every", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1,000 tenants")
    args = parser.parse_args()
    if args.quick:
        args.tenants = 1000
    work = Path(tempfile.mkdtemp(prefix="retrainq-m1-"))
    (work / "redis").mkdir()
    redis_port, azurite_port = free_port(), free_port()
    processes = [
        ManagedProcess(
            "redis",
            redis_argv(ensure_redis_server(), redis_port, work / "redis", aof=False),
            redis_port,
            work / "redis.log",
            ready=redis_ready,
        ),
        ManagedProcess(
            "azurite", azurite_argv(ensure_azurite(), azurite_port), azurite_port, work / "az.log"
        ),
    ]
    try:
        for process in processes:
            process.start(timeout=60)
        figures = asyncio.run(
            measure(
                args, f"redis://127.0.0.1:{redis_port}/0", azurite_connection_string(azurite_port)
            )
        )
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    emit("m1_redis_sizing", figures)


if __name__ == "__main__":
    main()
