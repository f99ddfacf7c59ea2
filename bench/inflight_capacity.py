"""B3: in-flight capacity — one worker process holding N BES jobs in flight: CPU share and RSS.

Starts a private stack (bench/common.py) whose emulator has ``--endpoints`` BES endpoints of
``--endpoint-jobs`` jobs (10 x 1,000 = 10,000 by default; the worker accepts at most 1,000
per endpoint), instant mode with ``min_job_seconds`` = ``--job-seconds`` (600: no job finishes
during the measurement), and ONE worker process with default polling (``poll_min_seconds``
0.5, ``poll_max_seconds`` at its default unless ``--poll-max`` says otherwise). A bulk batch
of N tenants is started in this process; once the emulator reports N jobs running, the
worker's CPU time (``/proc/<pid>/stat``) and RSS (``/proc/<pid>/status``) are sampled every 5 s over
``--window`` seconds, with its BES status calls from its own ``/metrics``.

Reported: time to get all N in flight, CPU share of one core over the window (target < 20 %),
peak RSS (target < 300 MB), status polls/s and CPU ms per poll, and the samples (a curve).
Usage: ``.venv/bin/python bench/inflight_capacity.py [--jobs 10000] [--window 60] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from common import BenchStack, cpu_seconds, emit, rss_mb

from worker.bulk import start_batch
from worker.queue import StepQueue

QUEUE = "retrainq:queue"


async def bes_status_calls(http: aiohttp.ClientSession, metrics_url: str) -> float:
    """BES calls answered 200 so far, from the worker's Prometheus endpoint."""
    async with http.get(metrics_url) as reply:
        text = await reply.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith('retrainq_remote_calls_total{api="bes",status="200"}'):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """Fill the worker with in-flight jobs, then sample it."""
    worker = stack.workers[0]
    metrics_url = f"http://127.0.0.1:{worker.port}/metrics"
    redis = stack.redis()
    store = stack.store(redis)
    pool = await stack.arq_pool()
    try:
        async with aiohttp.ClientSession() as http:
            await stack.upload_shared_data()
            await stack.emulator(
                http,
                "PUT",
                "/_emulator/settings",
                {"instant": True, "min_job_seconds": args.job_seconds},
            )
            ids = await stack.onboard(store, "inflight", args.jobs)
            tenants = await store.get_tenants(ids)
            idle_rss = rss_mb(worker.pid)
            began = time.perf_counter()
            await start_batch(
                store, StepQueue(pool, QUEUE), tenants, services=stack.training_services()
            )
            fill: list[tuple[float, int]] = []
            while True:
                running = (await stack.training_stats(http))["running_now"]
                fill.append((round(time.perf_counter() - began, 1), running))
                if running >= args.jobs:
                    break
                if time.perf_counter() - began > args.fill_timeout:
                    raise TimeoutError(f"only {running} of {args.jobs} in flight")
                await asyncio.sleep(2)
            filled = time.perf_counter() - began
            await asyncio.sleep(args.settle)
            samples = []
            cpu0, calls0, t0 = (
                cpu_seconds(worker.pid),
                await bes_status_calls(http, metrics_url),
                0.0,
            )
            start = time.perf_counter()
            previous = (cpu0, calls0, 0.0)
            while t0 < args.window:
                await asyncio.sleep(5)
                t0 = time.perf_counter() - start
                cpu, calls = cpu_seconds(worker.pid), await bes_status_calls(http, metrics_url)
                samples.append(
                    {
                        "t": round(t0, 1),
                        "cpu_share": round((cpu - previous[0]) / (t0 - previous[2]), 3),
                        "polls_per_s": round((calls - previous[1]) / (t0 - previous[2]), 1),
                        "rss_mb": round(rss_mb(worker.pid), 1),
                    }
                )
                previous = (cpu, calls, t0)
            cpu_total = cpu_seconds(worker.pid) - cpu0
            polls = await bes_status_calls(http, metrics_url) - calls0
            stats = await stack.training_stats(http)
    finally:
        await pool.aclose()
        await redis.aclose()
    window = samples[-1]["t"]
    return {
        "jobs_in_flight": stats["running_now"],
        "seconds_to_fill": round(filled, 1),
        "fill_curve": fill[:: max(1, len(fill) // 20)],
        "window_s": window,
        "cpu_share_of_one_core": round(cpu_total / window, 3),
        "target_cpu_share": 0.20,
        "rss_mb_idle": round(idle_rss, 1),
        "rss_mb_peak": max(s["rss_mb"] for s in samples),
        "target_rss_mb": 300,
        "bes_polls_per_s": round(polls / window, 1),
        "cpu_ms_per_poll": round(1000 * cpu_total / polls, 3) if polls else None,
        "samples": samples,
    }


def main() -> None:
    """Parse arguments, run on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--endpoint-jobs", type=int, default=1000)
    parser.add_argument("--job-seconds", type=float, default=600)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--settle", type=float, default=10, help="seconds after filling")
    parser.add_argument("--fill-timeout", type=float, default=480)
    parser.add_argument(
        "--poll-max", type=float, help="RETRAINQ_POLL_MAX_SECONDS (default: the setting's default)"
    )
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 20 s window")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.endpoints, args.window, args.settle = 1000, 1, 20, 5
    with BenchStack(training_endpoints=args.endpoints, endpoint_jobs=args.endpoint_jobs) as stack:
        settings = (
            {} if args.poll_max is None else {"RETRAINQ_POLL_MAX_SECONDS": str(args.poll_max)}
        )
        stack.start_workers(1, **settings)
        figures = asyncio.run(measure(stack, args))
    emit("B3 in-flight capacity", {"args": vars(args), **figures})


if __name__ == "__main__":
    main()
