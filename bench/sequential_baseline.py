"""B4: retrainq against the loop a user would write from Microsoft's many-models sample.

The baseline (``baseline_retrain``) is plain aiohttp, one tenant after another, as in the
retraining sample for Azure ML Studio (classic): PUT the tenant's endpoint on the predictive
web service, submit the BES training job and start it, poll its status every second until
``Finished``, then PATCH the endpoint's trained-model resource with the job's ``output1``.

Both sides run on one private stack (bench/common.py) with the same emulator settings (real
training, ``min_job_seconds`` = ``--job-seconds``, one BES endpoint of 40 jobs) on the same
training CSV, for ``--tenants`` tenants each: first the baseline, then retrainq (a bulk batch
started in this process, ``--workers`` worker processes with default settings). Reported:
wall time of each and the speedup. Usage:
``.venv/bin/python bench/sequential_baseline.py [--tenants 200] [--job-seconds 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from arq.connections import RedisSettings, create_pool
from common import RESOURCE, SHARED_DATA, BenchStack, emit, wait_batch

from producer.devtools.emulated import predictive_service_ids
from worker.bulk import start_batch
from worker.queue import StepQueue
from worker.serialization import deserialize, serialize

API = "?api-version=2.0"


async def baseline_retrain(
    http: aiohttp.ClientSession, config: dict[str, Any], base_url: str, blob_cs: str, name: str
) -> None:
    """Retrain one tenant the sequential way: PUT endpoint, submit, start, poll 1 s, PATCH."""
    workspace = config["workspaces"][0]
    training = next(s for s in workspace["web_services"] if s["name"] == "Bike Rental Training")
    endpoint = training["endpoints"][0]
    bes = f"{base_url}/workspaces/{workspace['id']}/services/{endpoint['id']}/jobs"
    bes_auth = {"Authorization": f"Bearer {endpoint['primary_key']}"}
    scoring = predictive_service_ids(config)["bike-rental"]
    management = f"{base_url}/workspaces/{workspace['id']}/webservices/{scoring}/endpoints/{name}"
    mgmt_auth = {"Authorization": f"Bearer {workspace['authorization_token']}"}

    body = {"Description": name, "ThrottleLevel": "High", "MaxConcurrentCalls": 20}
    async with http.put(management, json=body, headers=mgmt_auth) as reply:
        reply.raise_for_status()
    job = {
        "Inputs": {
            "input1": {"ConnectionString": blob_cs, "RelativeLocation": f"retrainq/{SHARED_DATA}"}
        },
        "Outputs": {
            "output1": {
                "ConnectionString": blob_cs,
                "RelativeLocation": f"retrainq/baseline/{name}.ilearner",
            },
            "output2": {
                "ConnectionString": blob_cs,
                "RelativeLocation": f"retrainq/baseline/{name}.csv",
            },
        },
        "GlobalParameters": {},
    }
    async with http.post(f"{bes}{API}", json=job, headers=bes_auth) as reply:
        reply.raise_for_status()
        job_id = await reply.json()
    async with http.post(f"{bes}/{job_id}/start{API}", headers=bes_auth) as reply:
        reply.raise_for_status()
    while True:
        async with http.get(f"{bes}/{job_id}{API}", headers=bes_auth) as reply:
            reply.raise_for_status()
            status = await reply.json()
        if status["StatusCode"] in ("Finished", "Failed", "Cancelled"):
            break
        await asyncio.sleep(1)
    if status["StatusCode"] != "Finished":
        raise RuntimeError(f"job {job_id} ended {status['StatusCode']}: {status.get('Details')}")
    output = status["Results"]["output1"]
    location = {k: output[k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")}
    patch = {"Resources": [{"Name": RESOURCE, "Location": location}]}
    async with http.patch(management, json=patch, headers=mgmt_auth) as reply:
        reply.raise_for_status()


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """The baseline, then retrainq, on the same stack and emulator settings."""
    redis = stack.redis()
    store = stack.store(redis)
    pool = await create_pool(
        RedisSettings.from_dsn(stack.redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name="retrainq:queue",
    )
    try:
        async with aiohttp.ClientSession() as http:
            await stack.upload_shared_data()
            await stack.emulator(
                http, "PUT", "/_emulator/settings", {"min_job_seconds": args.job_seconds}
            )
            began = time.perf_counter()
            for i in range(args.tenants):
                await baseline_retrain(
                    http, stack.config, stack.emulator_url, stack.blob_cs, f"base{i:05d}"
                )
            baseline = time.perf_counter() - began
            ids = await stack.onboard(store, "seq", args.tenants)
            tenants = await store.get_tenants(ids)
            began = time.perf_counter()
            started = await start_batch(
                store,
                StepQueue(pool, "retrainq:queue"),
                tenants,
                services=stack.training_services(),
            )
            counters = await wait_batch(store, started.batch.id, args.tenants, within=1200)
            ours = time.perf_counter() - began
            stats = await stack.training_stats(http)
    finally:
        await pool.aclose()
        await redis.aclose()
    return {
        "tenants": args.tenants,
        "job_seconds": args.job_seconds,
        "baseline_s": round(baseline, 2),
        "baseline_per_tenant_s": round(baseline / args.tenants, 3),
        "retrainq_s": round(ours, 2),
        "retrainq_succeeded": counters.get("n:succeeded", 0),
        "speedup": round(baseline / ours, 1),
        "emulator_jobs_finished": stats["jobs_finished"],
        "emulator_max_concurrent_running": stats["max_concurrent_running"],
    }


def main() -> None:
    """Parse arguments, run on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10 tenants")
    args = parser.parse_args()
    if args.quick:
        args.tenants = 10
    with BenchStack() as stack:
        stack.start_workers(args.workers)
        figures = asyncio.run(measure(stack, args))
    emit("B4 sequential baseline", {"args": vars(args), **figures})


if __name__ == "__main__":
    main()
