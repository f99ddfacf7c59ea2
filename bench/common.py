"""Shared pieces of the benchmarks: a private stack on free ports, fast onboarding, measurements.

``BenchStack`` starts redis-server (AOF everysec, as in production), Azurite, the emulator
(with a config file written from ``emulator.config.default_config``), optionally the API, and
any number of ``retrainq-worker`` processes, all in a temporary directory; ``close()`` stops
every process it started. Tenants are onboarded straight into Redis with ``worker.store.Store``
(all pointing at one uploaded training CSV) unless a benchmark is about the API.

Measurements: process CPU seconds from ``/proc/<pid>/stat``, RSS from ``/proc/<pid>/status``,
Redis command counts from ``INFO commandstats``, emulator counters from ``/_emulator/stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from pydantic import SecretStr

from emulator import datagen
from emulator.config import default_config
from producer.devtools.devstack import fetch_emulator_config
from producer.devtools.emulated import predictive_service_ids, training_services, worker_env
from producer.devtools.processes import (
    ManagedProcess,
    azurite_argv,
    azurite_connection_string,
    console_script,
    ensure_azurite,
    ensure_redis_server,
    free_port,
    redis_argv,
    redis_ready,
)
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.schemas import ClassicTarget, Run, RunState, Tenant
from worker.serialization import deserialize, serialize
from worker.settings import RedisConfig, TrainingServiceConfig
from worker.store import Store

ADMIN_KEY = "bench-admin-key-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
RESOURCE = "Bike Rental [trained model]"
# One training CSV every benchmark tenant trains on: under a shared prefix of the settings
# (a tenant's own prefix, data/<tenant>/, would hold only its own data).
SHARED_PREFIX = "shared/bench/"
SHARED_DATA = f"{SHARED_PREFIX}v1.csv"
TERMINAL = [s.value for s in RunState if s.terminal]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based) of the line.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """p50, p99, min, max and mean of ``values``."""
    return {
        "p50": round(statistics.median(values), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def machine() -> dict[str, Any]:
    """The machine and versions the figures were measured with."""
    redis_version = subprocess.run(
        [ensure_redis_server(), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    return {
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "redis-server": redis_version.removeprefix("v="),
        "arq": version("arq"),
        "aiohttp": version("aiohttp"),
        "redis-py": version("redis"),
    }


def emit(name: str, figures: dict[str, Any]) -> None:
    """Print the one JSON result line of a benchmark."""
    print(json.dumps({"bench": name, **figures, "machine": machine()}), flush=True)


class BenchStack:
    """Redis, Azurite, emulator, optional API and workers on free ports in a temp directory."""

    def __init__(
        self,
        *,
        training_endpoints: int = 1,
        endpoint_jobs: int = 40,
        api: bool = False,
        aof: bool = True,
    ) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="retrainq-bench-"))
        self.training_endpoints = training_endpoints
        self.endpoint_jobs = endpoint_jobs
        self.with_api = api
        self.aof = aof
        self.redis_port = free_port()
        self.azurite_port = free_port()
        self.emulator_port = free_port()
        self.api_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.blob_cs = azurite_connection_string(self.azurite_port)
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.processes: list[ManagedProcess] = []
        self.workers: list[ManagedProcess] = []
        self.config: dict[str, Any] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def _write_emulator_config(self) -> Path:
        config = default_config(training_endpoints=self.training_endpoints)
        for service in config.workspaces[0].web_services:
            if service.kind == "training":
                for endpoint in service.endpoints:
                    endpoint.max_concurrent_jobs = self.endpoint_jobs
        path = self.work / "emulator.json"
        path.write_text(config.model_dump_json())
        return path

    def _spawn(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        process.start(timeout=60)
        return process

    def start(self) -> BenchStack:
        """Start Redis, Azurite, the emulator and (if asked) the API."""
        (self.work / "redis").mkdir()
        self._spawn(
            ManagedProcess(
                "redis",
                redis_argv(
                    ensure_redis_server(), self.redis_port, self.work / "redis", aof=self.aof
                ),
                self.redis_port,
                self.work / "redis.log",
                ready=redis_ready,
            )
        )
        self._spawn(
            ManagedProcess(
                "azurite",
                azurite_argv(ensure_azurite(), self.azurite_port),
                self.azurite_port,
                self.work / "azurite.log",
            )
        )
        emulator_argv = [
            console_script("retrainq-emulator"),
            "--port",
            str(self.emulator_port),
            "--config",
            str(self._write_emulator_config()),
            "--log-level",
            "WARNING",
            "--log-format",
            "json",
        ]
        self._spawn(
            ManagedProcess("emulator", emulator_argv, self.emulator_port, self.work / "emu.log")
        )
        self.config = fetch_emulator_config(self.emulator_url)
        if self.with_api:
            self._spawn(
                ManagedProcess(
                    "api",
                    [console_script("retrainq-api"), "--port", str(self.api_port)],
                    self.api_port,
                    self.work / "api.log",
                    env={
                        **self.base_env(),
                        "RETRAINQ_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
                        "RETRAINQ_RATE_LIMIT_REQUESTS": "1000000",
                        "RETRAINQ_LOG__LEVEL": "WARNING",
                    },
                    cwd=self.work,
                )
            )
        return self

    def training_services(self) -> dict[str, TrainingServiceConfig]:
        """The training services the workers of this stack are configured with."""
        raw = json.loads(self.base_env()["RETRAINQ_TRAINING_SERVICES"])
        return {name: TrainingServiceConfig.model_validate(c) for name, c in raw.items()}

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the stack, by name."""
        return {p.name: cpu_seconds(p.pid) for p in self.processes}

    def base_env(self) -> dict[str, str]:
        """Settings shared by the API and workers of this stack."""
        return {
            "RETRAINQ_REDIS__URL": self.redis_url,
            "RETRAINQ_BLOB__CONNECTION_STRING": self.blob_cs,
            "RETRAINQ_LOG__FORMAT": "json",
            "RETRAINQ_SHARED_DATA_PREFIXES": json.dumps([SHARED_PREFIX]),
            **worker_env(self.config, self.emulator_url),
        }

    def start_workers(self, count: int, **settings: str) -> list[ManagedProcess]:
        """Start ``count`` worker processes; ``settings`` are extra ``RETRAINQ_*`` variables."""
        started = []
        for _ in range(count):
            index = len(self.workers) + 1
            port = free_port()
            worker = ManagedProcess(
                f"worker-{index}",
                [console_script("retrainq-worker"), "--health-port", str(port)],
                port,
                self.work / f"worker-{index}.log",
                env={**self.base_env(), "RETRAINQ_POD_NAME": f"worker-{index}", **settings},
                cwd=self.work,
            )
            self._spawn(worker)
            self.workers.append(worker)
            started.append(worker)
        return started

    def close(self) -> None:
        """Stop every process this stack started (newest first) and remove the temp dir."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()
        if os.environ.get("RETRAINQ_BENCH_KEEP") is None:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> BenchStack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- clients ---------------------------------------------------------------------------

    def redis(self) -> aioredis.Redis:
        """A new async Redis client (decoded replies)."""
        client: aioredis.Redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        return client

    async def arq_pool(self) -> ArqRedis:
        """An arq pool on this stack's Redis with retrainq's queue and JSON serializer."""
        return await create_pool(
            RedisSettings.from_dsn(self.redis_url),
            job_serializer=serialize,
            job_deserializer=deserialize,
            default_queue_name=RedisConfig().queue_name,
        )

    def store(self, redis: aioredis.Redis) -> Store:
        """A Store over ``redis`` with the default key prefix."""
        return Store(redis, Keys("retrainq"))

    def target(self) -> ClassicTarget:
        """The classic target every benchmark tenant deploys to."""
        service_id = predictive_service_ids(self.config)["bike-rental"]
        return ClassicTarget(web_service_id=service_id, resource_name=RESOURCE)

    async def upload_shared_data(self, rows: int = 300) -> str:
        """Upload one training CSV that every benchmark tenant trains on; its path."""
        blobs = BlobStore(SecretStr(self.blob_cs), "retrainq")
        try:
            await blobs.ensure_container()
            csv = datagen.bike_rental_csv("bench", rows, seed=3)
            await blobs.upload(SHARED_DATA, csv.encode())
        finally:
            await blobs.close()
        return SHARED_DATA

    async def onboard(self, store: Store, prefix: str, count: int) -> list[str]:
        """Write ``count`` tenants straight into Redis (shared data); their ids."""
        ids = [f"{prefix}-{i:05d}" for i in range(count)]
        target = self.target()
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    store.create_tenant(
                        Tenant(id=i, target=target, data_path=SHARED_DATA, data_version=1)
                    )
                    for i in ids[start : start + 500]
                )
            )
        return ids

    async def emulator(
        self, http: aiohttp.ClientSession, method: str, path: str, body: object = None
    ) -> Any:
        """Call the emulator's admin API."""
        async with http.request(method, f"{self.emulator_url}{path}", json=body) as reply:
            reply.raise_for_status()
            return await reply.json() if reply.content_length != 0 else None

    async def training_stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """Job counters of the Bike Rental training service."""
        stats = await self.emulator(http, "GET", "/_emulator/stats")
        result: dict[str, Any] = stats["web_services"]["Bike Rental Training"]
        return result


async def command_calls(redis: aioredis.Redis) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``)."""
    info = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands called between two ``command_calls`` snapshots (non-zero only)."""
    delta = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v}


async def wait_batch(
    store: Store, batch_id: str, total: int, within: float, every: float = 0.1
) -> dict[str, int]:
    """Wait until every run of a batch is terminal; the batch's counters."""
    deadline = time.monotonic() + within
    while True:
        found = await store.get_batch(batch_id)
        counters = found[1] if found else {}
        done = sum(counters.get(f"n:{state}", 0) for state in TERMINAL)
        if done >= total:
            return counters
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id}: {done}/{total} done after {within}s: {counters}")
        await asyncio.sleep(every)


def phase_seconds(runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """Seconds each run spent in each state (entry to the next state's entry): p50 and p99."""
    spent: dict[str, list[float]] = {}
    for run in runs:
        entries = sorted(run.phases.items(), key=lambda kv: kv[1])
        previous = ("created", run.created_at)
        for state, at in entries:
            spent.setdefault(previous[0], []).append((at - previous[1]).total_seconds())
            previous = (state, at)
    return {
        state: {"p50": round(statistics.median(v), 3), "p99": round(percentile(v, 99), 3)}
        for state, v in spent.items()
    }


async def batch_runs(store: Store, batch_id: str) -> list[Run]:
    """Every run of a batch."""
    run_ids: list[str] = []
    while True:
        page = await store.batch_run_ids(batch_id, len(run_ids), 1000)
        if not page:
            break
        run_ids += page
    return await store.get_runs(run_ids)


async def post_batch(
    http: aiohttp.ClientSession, api_url: str, tenant_ids: list[str]
) -> dict[str, Any]:
    """POST /v1/batches for ``tenant_ids``; the API's answer."""
    async with http.post(
        f"{api_url}/v1/batches", json={"tenant_ids": tenant_ids}, headers=ADMIN_HEADERS
    ) as reply:
        body: dict[str, Any] = await reply.json()
        if reply.status != 202:
            raise RuntimeError(f"batch refused: {reply.status} {body}")
        return body


def _services(stack: BenchStack, reserve: int | None) -> dict[str, dict[str, Any]]:
    services = training_services(stack.config, stack.emulator_url)
    if reserve is not None:
        services["default"]["interactive_reserve"] = reserve
    return services


def services_with_reserve(stack: BenchStack, reserve: int | None) -> dict[str, str]:
    """Worker settings giving the default training service ``reserve`` as its
    interactive_reserve; none (the service keeps its default) when ``reserve`` is None."""
    if reserve is None:
        return {}
    return {"RETRAINQ_TRAINING_SERVICES": json.dumps(_services(stack, reserve))}


def reserve_of(stack: BenchStack, reserve: int | None) -> int:
    """The interactive_reserve the workers' default training service runs with."""
    config = TrainingServiceConfig.model_validate(_services(stack, reserve)["default"])
    return config.interactive_reserve
