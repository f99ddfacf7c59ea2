"""B7: retrainq against the fastest client one could write — the honest limit of a run's cost.

The reference client (``reference_run``) is one asyncio process with no durability: for each
tenant it makes exactly the remote calls a retrainq run makes — look up the tenant's classic
endpoint, create it, submit the BES training job, start it, poll its status on retrainq's own
schedule (``worker.polling.poll_interval``), read the evaluation CSV from blob storage, PATCH
the endpoint's trained model — through the same typed clients the worker uses, under the
same caps (jobs per BES endpoint, jobs per service). It keeps nothing: a crash loses
everything, which is the price retrainq's CPU per run is measured against.

Both run on one private stack (bench/common.py), in one run, on different tenants of the same
size: first the reference, then retrainq (a bulk batch, ``--workers`` worker processes).
Figures: makespan of each; CPU per run of each (the reference: this process's CPU during its
phase; retrainq: the workers', and separately Redis', the emulator's and Azurite's); Redis
commands and arq jobs per run. Usage:
``.venv/bin/python bench/limit_client.py [--tenants 2000 --endpoints 5 --endpoint-jobs 40
--job-seconds 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

import aiohttp
from common import (
    RESOURCE,
    SHARED_DATA,
    BenchStack,
    calls_delta,
    command_calls,
    emit,
    wait_batch,
)
from pydantic import SecretStr

from worker.azureml.bes import BesClient, BesJobRequest, JobState
from worker.azureml.classic import EndpointsClient
from worker.blobs import BlobStore
from worker.bulk import start_batch
from worker.evaluate import parse_evaluation_csv
from worker.logs import configure_logging
from worker.naming import endpoint_name_for
from worker.polling import poll_interval
from worker.queue import StepQueue
from worker.settings import LogConfig, TrainingServiceConfig

SERVICE = "default"


class Reference:
    """The non-durable client: every remote call of a run, nothing else."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        stack: BenchStack,
        service: TrainingServiceConfig,
        blobs: BlobStore,
    ) -> None:
        workspace = stack.config["workspaces"][0]
        self.blobs = blobs
        self.service = service
        self.bes = [BesClient(http, e.url, e.api_key) for e in service.endpoints]
        self.endpoint_gates = [asyncio.Semaphore(e.max_concurrent_jobs) for e in service.endpoints]
        self.service_gate = asyncio.Semaphore(service.max_running)
        self.endpoints = EndpointsClient(
            http,
            stack.emulator_url,
            workspace["id"],
            SecretStr(workspace["authorization_token"]),
        )
        self.target = stack.target()
        self.next_endpoint = 0

    async def run(self, tenant: str, poll_min: float, poll_max: float) -> None:
        """One tenant's retrain: train on the shared CSV, evaluate, deploy to its endpoint."""
        index = self.next_endpoint % len(self.bes)
        self.next_endpoint += 1
        model = f"bench-reference/{tenant}.ilearner"
        evaluation = f"bench-reference/{tenant}.csv"
        async with self.service_gate, self.endpoint_gates[index]:
            request = BesJobRequest(
                inputs={self.service.input_name: self.blobs.reference(SHARED_DATA)},
                outputs={
                    self.service.model_output: self.blobs.reference(model),
                    self.service.evaluation_output: self.blobs.reference(evaluation),
                },
            )
            client = self.bes[index]
            job = await client.submit(request)
            await client.start(job)
            started = time.monotonic()
            while True:
                age = time.monotonic() - started
                await asyncio.sleep(poll_interval(age, poll_min, poll_max))
                status = await client.status(job)
                if status.state not in (JobState.NOT_STARTED, JobState.RUNNING):
                    break
        if status.state is not JobState.FINISHED:
            raise RuntimeError(f"{tenant}: job {job} ended {status.state.value}")
        data = await self.blobs.download(evaluation, max_bytes=1 << 20)
        parse_evaluation_csv(data.decode())
        web_service, name = self.target.web_service_id, endpoint_name_for(tenant)
        if await self.endpoints.get_endpoint(web_service, name) is None:
            await self.endpoints.create_endpoint(web_service, name, description=tenant)
        location = self.blobs.read_sas(model, timedelta(hours=1))
        await self.endpoints.patch_model(web_service, name, RESOURCE, location)


async def measure(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """The reference client, then retrainq, on the same stack and emulator settings."""
    redis = stack.redis()
    store = stack.store(redis)
    pool = await stack.arq_pool()
    service = stack.training_services()[SERVICE]
    blobs = BlobStore(SecretStr(stack.blob_cs), "retrainq")
    try:
        async with aiohttp.ClientSession() as http:
            await stack.upload_shared_data()
            settings = {"min_job_seconds": args.job_seconds, "instant": True}
            await stack.emulator(http, "PUT", "/_emulator/settings", settings)
            reference = Reference(http, stack, service, blobs)
            cpu_before, began = time.process_time(), time.perf_counter()
            await asyncio.gather(
                *(reference.run(f"ref-{i:05d}", 0.5, 90.0) for i in range(args.tenants))
            )
            reference_s = time.perf_counter() - began
            reference_cpu = time.process_time() - cpu_before

            tenants = await store.get_tenants(await stack.onboard(store, "rq", args.tenants))
            cpu_at = stack.cpu_by_process()
            calls_at = await command_calls(redis)
            began = time.perf_counter()
            started = await start_batch(
                store, StepQueue(pool, "retrainq:queue"), tenants, services={SERVICE: service}
            )
            counters = await wait_batch(store, started.batch.id, args.tenants, within=3600)
            ours_s = time.perf_counter() - began
            calls = calls_delta(calls_at, await command_calls(redis))
            cpu_after = stack.cpu_by_process()
    finally:
        await blobs.close()
        await pool.aclose()
        await redis.aclose()
    spent = {name: cpu_after[name] - cpu_at.get(name, 0.0) for name in cpu_after}
    workers = sum(v for name, v in spent.items() if name.startswith("worker-"))
    per_run = 1000 / args.tenants
    reference_ms = reference_cpu * per_run
    worker_ms = workers * per_run
    return {
        "tenants": args.tenants,
        "endpoints": args.endpoints,
        "endpoint_jobs": args.endpoint_jobs,
        "job_seconds": args.job_seconds,
        "reference": {
            "makespan_s": round(reference_s, 2),
            "cpu_ms_per_run": round(reference_ms, 2),
        },
        "retrainq": {
            "makespan_s": round(ours_s, 2),
            "succeeded": counters.get("n:succeeded", 0),
            "worker_cpu_ms_per_run": round(worker_ms, 2),
            "cpu_ms_per_run_by_process": {
                name: round(v * per_run, 2)
                for name, v in spent.items()
                if not name.startswith("worker-")
            },
            "redis_commands_per_run": round(sum(calls.values()) / args.tenants, 1),
            "arq_jobs_per_run": round(calls.get("psetex", 0) / args.tenants, 2),
        },
        "ratios": {
            "worker_cpu_per_run": round(worker_ms / reference_ms, 2) if reference_ms else None,
            "makespan": round(ours_s / reference_s, 3),
        },
        "targets": {"worker_cpu_per_run": 3.0, "makespan": 1.03},
    }


def main() -> None:
    """Parse arguments, run on a private stack, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--endpoint-jobs", type=int, default=40)
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="200 tenants, 1 endpoint of 40, 2 s")
    args = parser.parse_args()
    # The worker's own logging setup at WARNING: the reference pays for no log lines either.
    configure_logging(LogConfig(level="WARNING"))
    if args.quick:
        args.tenants, args.endpoints, args.endpoint_jobs, args.job_seconds = 200, 1, 40, 2.0
    with BenchStack(training_endpoints=args.endpoints, endpoint_jobs=args.endpoint_jobs) as stack:
        stack.start_workers(args.workers)
        figures = asyncio.run(measure(stack, args))
    emit("B7 limit client", {"args": vars(args), **figures})


if __name__ == "__main__":
    main()
