"""B6: onboarding during a bulk retrain — POST /v1/tenants to its BES job starting, p50/p99.

Starts a private stack (bench/common.py) with the API, ``--workers`` worker processes with
default settings and the emulator's default cap (one BES endpoint of 40 jobs), instant mode
with ``min_job_seconds`` = ``--bulk-job-seconds`` so slots turn over. ``--bulk`` tenants are
written straight into Redis and retrained with one ``POST /v1/batches``; once every bulk run
has left ``queued`` (they wait for slots in the bulk lane), ``--onboardings`` tenants are
onboarded one after another through ``POST /v1/tenants`` with data and ``train: true``
(interactive lane), a random 0.5-1.5 x ``--gap`` seconds apart (seeded; a fixed gap can
lock onto the period of the bulk waves and measure one phase only). For each, the latency
is from just before the POST to the run's ``training`` phase time (recorded right after BES
accepted the start).

Reported: p50/p99/max of that latency (target p99 <= 2 s) and how many bulk runs were still
waiting at the time. Usage:
``.venv/bin/python bench/onboarding_during_bulk.py [--bulk 10000] [--onboardings 20] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from common import (
    ADMIN_HEADERS,
    SHARED_DATA,
    BenchStack,
    emit,
    post_batch,
    reserve_of,
    services_with_reserve,
    summary,
)

from worker.store import Store


async def wait_all_waiting(store: Store, batch_id: str, within: float) -> float:
    """Wait until no run of the batch is still ``queued``; seconds it took."""
    began = time.perf_counter()
    while True:
        found = await store.get_batch(batch_id)
        if found is not None and found[1].get("n:queued", 0) == 0:
            return time.perf_counter() - began
        if time.perf_counter() - began > within:
            raise TimeoutError(f"bulk runs still queued after {within}s: {found}")
        await asyncio.sleep(0.2)


async def onboard_one(
    http: aiohttp.ClientSession, stack: BenchStack, store: Store, tenant_id: str
) -> tuple[float, dict[str, float]]:
    """Onboard a tenant with data and training on; seconds until its BES job started."""
    body = {
        "id": tenant_id,
        "target": stack.target().model_dump(),
        "data_path": SHARED_DATA,
        "train": True,
    }
    posted = datetime.now(UTC)
    async with http.post(f"{stack.api_url}/v1/tenants", json=body, headers=ADMIN_HEADERS) as r:
        answer = await r.json()
        if r.status != 201:
            raise RuntimeError(f"onboarding refused: {r.status} {answer}")
    run_id = answer["run"]["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = await store.get_run(run_id)
        if run is not None and "training" in run.phases:
            phases = {"posted": posted, **run.phases}
            marks = sorted(phases.items(), key=lambda kv: kv[1])
            steps = {
                f"{a}->{b}": round((tb - ta).total_seconds(), 3)
                for (a, ta), (b, tb) in itertools.pairwise(marks)
            }
            latency = (run.phases["training"] - posted).total_seconds()
            return latency, steps
        await asyncio.sleep(0.01)
    raise TimeoutError(f"run {run_id} of {tenant_id} did not start training in 120 s")


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """Queue the bulk batch, then onboard tenants one by one."""
    redis = stack.redis()
    store = stack.store(redis)
    try:
        async with aiohttp.ClientSession() as http:
            await stack.upload_shared_data()
            await stack.emulator(
                http,
                "PUT",
                "/_emulator/settings",
                {"instant": True, "min_job_seconds": args.bulk_job_seconds},
            )
            ids = await stack.onboard(store, "bulk", args.bulk)
            batch = await post_batch(http, stack.api_url, ids)
            settled = await wait_all_waiting(store, batch["batch_id"], within=600)
            rng = random.Random(8)
            latencies: list[float] = []
            breakdown: list[dict[str, float]] = []
            waiting_bulk = []
            for i in range(args.onboardings):
                found = await store.get_batch(batch["batch_id"])
                waiting_bulk.append(found[1].get("n:waiting_slot", 0) if found else 0)
                latency, steps = await onboard_one(http, stack, store, f"new-{i:03d}")
                latencies.append(latency)
                breakdown.append(steps)
                await asyncio.sleep(args.gap * rng.uniform(0.5, 1.5))
            stats = await stack.training_stats(http)
    finally:
        await redis.aclose()
    return {
        "bulk_tenants": args.bulk,
        "seconds_until_bulk_all_waiting": round(settled, 1),
        "bulk_waiting_during_onboardings": {"min": min(waiting_bulk), "max": max(waiting_bulk)},
        "onboardings": args.onboardings,
        "post_to_bes_started_s": summary(latencies),
        "target_p99_s": 2.0,
        "latencies_s": [round(v, 3) for v in latencies],
        "breakdown_s": breakdown,
        "emulator_max_concurrent_running": stats["max_concurrent_running"],
    }


def main() -> None:
    """Parse arguments, run on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--onboardings", type=int, default=20)
    parser.add_argument("--bulk-job-seconds", type=float, default=5.0)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between onboardings")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--reserve", type=int, help="the service's interactive_reserve (default: its default)"
    )
    parser.add_argument("--quick", action="store_true", help="1,000 bulk tenants, 10 onboardings")
    args = parser.parse_args()
    if args.quick:
        args.bulk, args.onboardings = 1000, 10
    with BenchStack(api=True) as stack:
        stack.start_workers(args.workers, **services_with_reserve(stack, args.reserve))
        figures = {"interactive_reserve": reserve_of(stack, args.reserve)}
        figures |= asyncio.run(measure(stack, args))
    emit("B6 onboarding during bulk", {"args": vars(args), **figures})


if __name__ == "__main__":
    main()
