"""arq's own ceiling: how many no-op jobs/s arq workers run on a given Redis.

``python bench/arq_noop.py worker --redis URL --queue Q`` runs one arq worker with a single
no-op function and the tuning ``retrainq-worker`` uses (``max_jobs``, ``poll_delay`` 0.05,
``queue_read_limit``, ``keep_result`` 0, the JSON serializer). ``noop_rate`` enqueues jobs
for such workers, makes them all runnable at one instant, and times the queue draining.
Used by B2 (bench/orchestration_cost.py) in the same session and on the same Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

from arq.connections import RedisSettings, create_pool
from arq.typing import WorkerCoroutine
from arq.worker import Worker, func
from common import cpu_seconds

from worker.serialization import deserialize, serialize

POLL_DELAY = 0.05  # as in worker/runtime.py


async def noop(_ctx: dict[Any, Any], _n: int) -> None:
    """The job: nothing at all."""


def run_worker(redis_url: str, queue: str, max_jobs: int) -> None:
    """Run one arq no-op worker until SIGTERM."""
    worker = Worker(
        functions=[func(cast(WorkerCoroutine, noop), name="noop", timeout=20)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue,
        max_jobs=max_jobs,
        poll_delay=POLL_DELAY,
        queue_read_limit=max(1000, max_jobs * 5),
        keep_result=0,
        health_check_interval=1,
        health_check_key=f"{queue}:health:{os.getpid()}",
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
    worker.run()


async def noop_rate(
    redis_url: str, jobs: int, workers: int, max_jobs: int, log_dir: Path
) -> dict[str, Any]:
    """Start ``workers`` no-op worker processes, run ``jobs`` jobs; rate and CPU per job."""
    queue = f"bench:noop:{os.getpid()}:{time.monotonic_ns()}"
    procs = []
    for index in range(workers):
        log = (log_dir / f"noop-{index}.log").open("ab")
        argv = ["worker", "--redis", redis_url, "--queue", queue, "--max-jobs", str(max_jobs)]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                *argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue,
    )
    try:
        while len(await pool.keys(f"{queue}:health:*")) < workers:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.1)
        far = time.time() + 3600
        ids = iter(range(jobs))

        async def client() -> None:
            for n in ids:
                await pool.enqueue_job("noop", n, _job_id=f"noop:{n}", _defer_until=_dt(far))

        await asyncio.gather(*(client() for _ in range(64)))
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        members = await pool.zrange(queue, 0, -1)
        now_ms = int(time.time() * 1000)
        began = time.perf_counter()
        async with pool.pipeline(transaction=True) as pipe:
            pipe.zadd(queue, dict.fromkeys(members, now_ms))
            await pipe.execute()
        while await pool.zcard(queue) > 0:  # noqa: ASYNC110 (other processes drain it)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - began
        cpu = sum(cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before, strict=True))
    finally:
        await pool.aclose()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    return {
        "jobs": jobs,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(jobs / elapsed, 1),
        "worker_cpu_ms_per_job": round(1000 * cpu / jobs, 3),
    }


def _dt(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


def main() -> None:
    """``worker`` runs one no-op worker; otherwise measure against ``--redis``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["worker", "measure"])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue", default="bench:noop")
    parser.add_argument("--max-jobs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "worker":
        run_worker(args.redis, args.queue, args.max_jobs)
    else:
        figures = asyncio.run(
            noop_rate(args.redis, args.jobs, args.workers, args.max_jobs, Path.cwd())
        )
        print(figures)


if __name__ == "__main__":
    main()
