"""B8: bulk order — makespan of a bulk retrain whose jobs differ in length, FIFO against LPT.

Starts a private stack (bench/common.py) whose emulator draws each training job's duration
(``job_durations``: lognormal, median ``--median`` s, ``--sigma``, one draw per tenant, the
same every night) in instant mode, with ``--endpoints`` BES endpoints of ``--endpoint-jobs``
jobs (cap = their product, no interactive reserve: only bulk runs). Three nights, each one
``POST /v1/batches`` of every tenant, timed to its last deploy:

1. warm-up (``bulk_order`` fifo): the workers record each tenant's job duration — retrainq
   knows a tenant's length only from its history, so the first night cannot be in LPT order;
2. FIFO (``bulk_order`` fifo);
3. LPT (API and workers restarted with ``bulk_order`` longest_first).

Reported per measured night: makespan (POST to the latest ``succeeded`` phase), the lower
bound ``max(total work / cap, longest job)`` from the durations the emulator drew for that
night's jobs, their ratio (target ≤ 1.05 for LPT), and LPT's gain over FIFO (target ≥ 10 %).
Usage: ``.venv/bin/python bench/bulk_order.py [--tenants 2000] [--quick] [--timeline F]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    BenchStack,
    batch_runs,
    cpu_seconds,
    emit,
    phase_seconds,
    post_batch,
    summary,
    wait_batch,
)

from worker.store import Store

ROWS = 300  # rows of the shared training CSV: a job on them lasts the median before noise


class OrderStack(BenchStack):
    """A bench stack whose API and workers use one bulk order and no interactive reserve."""

    order = "fifo"

    def base_env(self) -> dict[str, str]:
        """The shared settings, with this stack's bulk order and every slot open to bulk."""
        env = super().base_env()
        services = json.loads(env["RETRAINQ_TRAINING_SERVICES"])
        for service in services.values():
            service["interactive_reserve"] = 0
        env["RETRAINQ_TRAINING_SERVICES"] = json.dumps(services)
        env["RETRAINQ_BULK_ORDER"] = self.order
        return env

    def switch_order(self, order: str) -> None:
        """Restart the API and the workers with ``order`` (nothing is in flight between nights)."""
        self.order = order
        for process in self.processes:
            if process.name == "api" or process in self.workers:
                process.stop()
                process.env = {**(process.env or {}), "RETRAINQ_BULK_ORDER": order}
                process.start(timeout=60)


async def night(
    stack: OrderStack, http: aiohttp.ClientSession, store: Store, ids: list[str], cap: int
) -> dict[str, Any]:
    """One bulk retrain of every tenant: makespan, lower bound and timeline."""
    cpu_before = {w.pid: cpu_seconds(w.pid) for w in stack.workers}
    started_at = datetime.now(UTC)
    began = time.perf_counter()
    batch = await post_batch(http, stack.api_url, ids)
    counters = await wait_batch(store, batch["batch_id"], len(ids), within=1800)
    observed = time.perf_counter() - began
    cpu = sum(
        cpu_seconds(w.pid) - before
        for w, before in zip(stack.workers, cpu_before.values(), strict=True)
    )
    runs = await batch_runs(store, batch["batch_id"])
    planned = (await stack.training_stats(http))["planned_seconds_by_output"]
    work = {r.tenant_id: planned[f"retrainq/{r.outputs.model_path}"] for r in runs}
    finished = [r.phases["succeeded"] for r in runs if "succeeded" in r.phases]
    makespan = (max(finished) - started_at).total_seconds()
    lower = max(sum(work.values()) / cap, max(work.values()))
    # How long after its job ended a run left training (the job's end noticed and handled).
    noticed = [
        (r.phases["evaluating"] - r.phases["training"]).total_seconds() - work[r.tenant_id]
        for r in runs
        if "evaluating" in r.phases and "training" in r.phases
    ]
    timeline = [
        {
            "job_s": round(work[r.tenant_id], 3),
            **{k: round((t - started_at).total_seconds(), 3) for k, t in r.phases.items()},
        }
        for r in runs
    ]
    return {
        "order": stack.order,
        "succeeded": len(finished),
        "counters": {k: v for k, v in counters.items() if k.startswith("n:") and v},
        "makespan_s": round(makespan, 2),
        "observed_done_s": round(observed, 2),
        "lower_bound_s": round(lower, 2),
        "ratio": round(makespan / lower, 3),
        "total_work_s": round(sum(work.values()), 1),
        "longest_job_s": round(max(work.values()), 2),
        "worker_cpu_s": round(cpu, 2),
        "bes_polls_per_run": round(sum(r.polls for r in runs) / max(1, len(runs)), 1),
        "training_minus_job_s": summary(noticed),
        "seconds_in_state": phase_seconds(runs),
        "timeline": timeline,
    }


async def prepare(stack: OrderStack, args: argparse.Namespace) -> list[str]:
    """Upload the shared data, onboard the tenants, turn on the drawn durations."""
    redis = stack.redis()
    try:
        await stack.upload_shared_data(rows=ROWS)
        ids = await stack.onboard(stack.store(redis), "order", args.tenants)
    finally:
        await redis.aclose()
    async with aiohttp.ClientSession() as http:
        durations = {"median_seconds": args.median, "sigma": args.sigma, "reference_rows": ROWS}
        await stack.emulator(
            http, "PUT", "/_emulator/settings", {"instant": True, "job_durations": durations}
        )
    return ids


async def measure_night(stack: OrderStack, ids: list[str], cap: int) -> dict[str, Any]:
    """One night on fresh clients."""
    redis = stack.redis()
    try:
        async with aiohttp.ClientSession() as http:
            return await night(stack, http, stack.store(redis), ids, cap)
    finally:
        await redis.aclose()


def main() -> None:
    """Parse arguments, run three nights on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--median", type=float, default=5.0)
    parser.add_argument("--sigma", type=float, default=0.8)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--endpoint-jobs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="200 tenants, cap 40, median 2 s")
    parser.add_argument("--timeline", help="write both measured nights' phase times here")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.endpoints, args.median = 200, 1, 2.0
    cap = args.endpoints * args.endpoint_jobs
    stack = OrderStack(
        training_endpoints=args.endpoints, endpoint_jobs=args.endpoint_jobs, api=True
    )
    with stack:
        stack.start_workers(args.workers)
        ids = asyncio.run(prepare(stack, args))
        warmup = asyncio.run(measure_night(stack, ids, cap))
        fifo = asyncio.run(measure_night(stack, ids, cap))
        stack.switch_order("longest_first")
        lpt = asyncio.run(measure_night(stack, ids, cap))
    timelines = {"cap": cap, "fifo": fifo.pop("timeline"), "longest_first": lpt.pop("timeline")}
    warmup.pop("timeline")
    warmup.pop("seconds_in_state")
    if args.timeline:
        Path(args.timeline).write_text(json.dumps(timelines))
    emit(
        "B8 bulk order",
        {
            "tenants": args.tenants,
            "cap": cap,
            "median_s": args.median,
            "sigma": args.sigma,
            "workers": args.workers,
            "fifo": fifo,
            "longest_first": lpt,
            "lpt_vs_fifo": round(lpt["makespan_s"] / fifo["makespan_s"], 3),
            "target_ratio": 1.05,
            "target_gain": 0.10,
            "warmup": warmup,
        },
    )


if __name__ == "__main__":
    main()
