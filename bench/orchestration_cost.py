"""B2: orchestration cost — runs/s, worker CPU and Redis commands per run, against arq's no-op rate.

Starts a private stack (bench/common.py) with the emulator in instant mode (a BES job finishes
as soon as it starts and writes a constant model) and BES slots that never bind (two endpoints
of 1,000 jobs), so what is measured is retrainq's own cost: ``--workers`` worker processes
with default settings take ``--runs`` tenants from a bulk batch (started in this process with
``worker.bulk.start_batch``) to ``succeeded`` (submit, start, poll, evaluate, PUT endpoint,
PATCH endpoint).

Reported: runs/s from the start of the batch to the last finished run, worker CPU ms per run,
Redis commands per run (``INFO commandstats`` delta, including the benchmark's own progress
reads), and — in the same session, on the same Redis — arq's own rate for no-op jobs with the
same tuning (bench/arq_noop.py), with 1 and with ``--workers`` processes. The figure of merit
is runs/s / arq no-op jobs/s (target >= 0.25). Usage:
``.venv/bin/python bench/orchestration_cost.py [--runs 2000] [--workers 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from arq_noop import noop_rate
from common import (
    BenchStack,
    batch_runs,
    calls_delta,
    command_calls,
    cpu_seconds,
    emit,
    phase_seconds,
    wait_batch,
)

from worker.bulk import start_batch
from worker.queue import StepQueue

QUEUE = "retrainq:queue"


async def retrainq_rate(stack: BenchStack, runs: int) -> dict[str, Any]:
    """Take ``runs`` tenants through a bulk batch; rate, CPU and commands per run."""
    redis = stack.redis()
    store = stack.store(redis)
    pool = await stack.arq_pool()
    try:
        async with aiohttp.ClientSession() as http:
            await stack.upload_shared_data()
            await stack.emulator(http, "PUT", "/_emulator/settings", {"instant": True})
            ids = await stack.onboard(store, "cost", runs)
            tenants = await store.get_tenants(ids)
            pids = [w.pid for w in stack.workers]
            others = {p.name: p.pid for p in stack.processes if not p.name.startswith("worker")}
            cpu_before = {pid: cpu_seconds(pid) for pid in [*pids, *others.values()]}
            calls_before = await command_calls(redis)
            began = time.perf_counter()
            started = await start_batch(
                store, StepQueue(pool, QUEUE), tenants, services=stack.training_services()
            )
            counters = await wait_batch(store, started.batch.id, runs, within=600, every=0.05)
            elapsed = time.perf_counter() - began
            cpu = {pid: cpu_seconds(pid) - before for pid, before in cpu_before.items()}
            calls = calls_delta(calls_before, await command_calls(redis))
            stats = await stack.training_stats(http)
            phases = phase_seconds(await batch_runs(store, started.batch.id))
    finally:
        await pool.aclose()
        await redis.aclose()
    worker_cpu = sum(cpu[pid] for pid in pids)
    total_calls = sum(calls.values())
    return {
        "runs": runs,
        "succeeded": counters.get("n:succeeded", 0),
        "seconds": round(elapsed, 3),
        "runs_per_second": round(runs / elapsed, 1),
        "worker_cpu_ms_per_run": round(1000 * worker_cpu / runs, 2),
        "worker_cpu_share_of_2_cores": round(worker_cpu / elapsed / 2, 3),
        "other_cpu_s": {name: round(cpu[pid], 2) for name, pid in others.items()},
        "redis_commands_per_run": round(total_calls / runs, 1),
        "redis_top_commands_per_run": {k: round(v / runs, 1) for k, v in list(calls.items())[:12]},
        "emulator_jobs_started": stats["jobs_started"],
        "seconds_in_state": phases,
    }


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """arq no-op rates and retrainq's rate on the same Redis, in one session."""
    noop_one = await noop_rate(stack.redis_url, args.noop_jobs, 1, args.max_jobs, stack.work)
    noop_many = await noop_rate(
        stack.redis_url, args.noop_jobs, args.workers, args.max_jobs, stack.work
    )
    stack.start_workers(args.workers, RETRAINQ_MAX_JOBS=str(args.max_jobs))
    ours = await retrainq_rate(stack, args.runs)
    best_noop = max(noop_one["jobs_per_second"], noop_many["jobs_per_second"])
    return {
        "retrainq": ours,
        "arq_noop_1_worker": noop_one,
        f"arq_noop_{args.workers}_workers": noop_many,
        "ratio_runs_per_noop_job": round(ours["runs_per_second"] / best_noop, 3),
        "target_ratio": 0.25,
    }


def main() -> None:
    """Parse arguments, run on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-jobs", type=int, default=200)
    parser.add_argument("--noop-jobs", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="300 runs, 2,000 no-op jobs")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.noop_jobs = 300, 2000
    with BenchStack(training_endpoints=2, endpoint_jobs=1000) as stack:
        figures = asyncio.run(measure(stack, args))
    emit("B2 orchestration cost", {"args": vars(args), **figures})


if __name__ == "__main__":
    main()
