"""B1: fleet makespan — a bulk retrain of N tenants at a cap of C BES jobs, against ceil(N/C) x d.

Starts a private stack (bench/common.py) whose emulator has ``--endpoints`` BES endpoints of
``--endpoint-jobs`` jobs each, in instant mode with ``min_job_seconds`` = ``--duration`` (every
job takes exactly that long, no training CPU), and ``--workers`` worker processes whose
training service lists every endpoint with ``max_running`` = endpoints x endpoint-jobs.
Tenants are written straight into Redis; the bulk retrain is one ``POST /v1/batches``.

Reported: wall time from the POST to the last deploy (latest ``succeeded`` phase time), the
ideal ``ceil(N / cap) x duration``, their ratio (target ≤ 1.10), the emulator's peak of
concurrently running jobs, and worker CPU. The training service keeps its default
``interactive_reserve`` (slots bulk may not take) unless ``--reserve`` sets one; the ideal is
of the whole cap either way, so the ratio carries the reserve's cost, and ``ideal_bulk_s``
is that of the slots bulk may take. Usage:
``.venv/bin/python bench/fleet_makespan.py [--tenants 2000] [--duration 5] [--reserve N]
[--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    BenchStack,
    command_calls,
    cpu_seconds,
    emit,
    phase_seconds,
    post_batch,
    reserve_of,
    services_with_reserve,
    wait_batch,
)


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """Onboard, start the batch, wait for it; the figures."""
    cap = args.endpoints * args.endpoint_jobs
    redis = stack.redis()
    store = stack.store(redis)
    async with aiohttp.ClientSession() as http:
        await stack.upload_shared_data()
        ids = await stack.onboard(store, "fleet", args.tenants)
        await stack.emulator(
            http, "PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": args.duration}
        )
        cpu_before = {w.pid: cpu_seconds(w.pid) for w in stack.workers}
        stack_before = stack.cpu_by_process()
        calls_before = await command_calls(redis)
        started_at = datetime.now(UTC)
        began = time.perf_counter()
        batch = await post_batch(http, stack.api_url, ids)
        accepted = time.perf_counter() - began
        counters = await wait_batch(store, batch["batch_id"], args.tenants, within=args.timeout)
        observed = time.perf_counter() - began
        calls = sum((await command_calls(redis)).values()) - sum(calls_before.values())
        cpu = sum(
            cpu_seconds(w.pid) - before
            for w, before in zip(stack.workers, cpu_before.values(), strict=True)
        )
        stats = await stack.training_stats(http)
        stack_cpu = {
            name: round(cpu - stack_before.get(name, 0.0), 2)
            for name, cpu in stack.cpu_by_process().items()
        }
    run_ids: list[str] = []
    while len(run_ids) < args.tenants:
        page = await store.batch_run_ids(batch["batch_id"], len(run_ids), 1000)
        if not page:
            break
        run_ids += page
    runs = await store.get_runs(run_ids)
    await redis.aclose()
    timeline = [
        {k: round((t - started_at).total_seconds(), 3) for k, t in r.phases.items()} for r in runs
    ]
    finished = [r.phases["succeeded"] for r in runs if "succeeded" in r.phases]
    last_deploy = (max(finished) - started_at).total_seconds()
    ideal = math.ceil(args.tenants / cap) * args.duration
    reserve = reserve_of(stack, args.reserve)
    return {
        "tenants": args.tenants,
        "cap": cap,
        "interactive_reserve": reserve,
        "ideal_bulk_s": math.ceil(args.tenants / (cap - reserve)) * args.duration,
        "duration_s": args.duration,
        "workers": args.workers,
        "succeeded": len(finished),
        "counters": {k: v for k, v in counters.items() if k.startswith("n:") and v},
        "batch_accepted_s": round(accepted, 3),
        "makespan_s": round(last_deploy, 2),
        "observed_done_s": round(observed, 2),
        "ideal_s": ideal,
        "ratio": round(last_deploy / ideal, 3),
        "target_ratio": 1.10,
        "emulator_max_concurrent_running": stats["max_concurrent_running"],
        "emulator_jobs_started": stats["jobs_started"],
        "worker_cpu_s": round(cpu, 2),
        "cpu_s_by_process": stack_cpu,
        "redis_commands_per_run": round(calls / args.tenants, 1),
        "bes_polls_per_run": round(sum(r.polls for r in runs) / max(1, len(runs)), 1),
        "seconds_in_state": phase_seconds(runs),
        "timeline": timeline,
    }


def main() -> None:
    """Parse arguments, run on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--endpoint-jobs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--quick", action="store_true", help="200 tenants, cap 40 (1 endpoint)")
    parser.add_argument("--timeline", help="write each run's phase times (s from the POST) here")
    parser.add_argument(
        "--reserve", type=int, help="the service's interactive_reserve (default: its default)"
    )
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.endpoints, args.duration = 200, 1, 2.0
    with BenchStack(
        training_endpoints=args.endpoints, endpoint_jobs=args.endpoint_jobs, api=True
    ) as stack:
        stack.start_workers(args.workers, **services_with_reserve(stack, args.reserve))
        figures = asyncio.run(measure(stack, args))
    timeline = figures.pop("timeline")
    if args.timeline:
        Path(args.timeline).write_text(json.dumps(timeline))
    emit("B1 fleet makespan", figures)


if __name__ == "__main__":
    main()
