"""A small fleet for pipeline tests: tenants with data, workers (in this event loop, or processes
for chaos and security tests), scoring checks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from pydantic import SecretStr

from emulator import datagen
from emulator.training import ModelSpec, input_columns, parse_csv, train
from producer.devtools.emulated import predictive_service_ids, worker_env
from producer.devtools.processes import ManagedProcess, console_script, free_port
from tests.integration.workers import LocalWorker, settings_from
from worker.blobs import BlobStore, training_data_path
from worker.keys import Keys
from worker.queue import StepQueue
from worker.schemas import ClassicTarget, Lane, NewServiceTarget, Run, Tenant
from worker.serialization import deserialize, serialize
from worker.store import RunRequest, Store

QUEUE = "retrainq:queue"
RESOURCE = "Bike Rental [trained model]"


@dataclass
class Fleet:
    """Tenants, their runs and the worker processes that advance them."""

    redis_url: str
    blob_connection_string: str
    emulator_url: str
    log_dir: Path
    redis: aioredis.Redis
    pool: ArqRedis
    http: aiohttp.ClientSession
    blobs: BlobStore
    config: dict[str, Any]
    store: Store = field(init=False)
    queue: StepQueue = field(init=False)
    workers: list[ManagedProcess] = field(default_factory=list)
    local: list[LocalWorker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = Store(self.redis, Keys("retrainq"))
        self.queue = StepQueue(self.pool, QUEUE)

    # --- emulator ----------------------------------------------------------------------------

    async def emulator(self, method: str, path: str, body: object = None) -> Any:
        """Call the emulator's admin API."""
        async with self.http.request(method, f"{self.emulator_url}{path}", json=body) as reply:
            assert reply.status < 300, await reply.text()
            return await reply.json() if reply.content_length != 0 else None

    async def training_stats(self, service: str = "Bike Rental Training") -> dict[str, Any]:
        """Job counters of one training web service."""
        stats = await self.emulator("GET", "/_emulator/stats")
        result: dict[str, Any] = stats["web_services"][service]
        return result

    def spec(self, model: str = "bike-rental") -> ModelSpec:
        """The emulator's model spec (features, label) of ``model``."""
        return next(
            ModelSpec.model_validate(m) for m in self.config["models"] if m["name"] == model
        )

    # --- workers -----------------------------------------------------------------------------

    def worker_env(self, **settings: str) -> dict[str, str]:
        """``RETRAINQ_*`` variables of a worker of this fleet, ``settings`` on top."""
        return {
            "RETRAINQ_REDIS__URL": self.redis_url,
            "RETRAINQ_BLOB__CONNECTION_STRING": self.blob_connection_string,
            "RETRAINQ_LOG__FORMAT": "json",
            "RETRAINQ_POLL_MIN_SECONDS": "0.2",
            "RETRAINQ_POLL_MAX_SECONDS": "1",
            **worker_env(self.config, self.emulator_url),
            **settings,
        }

    def run_workers(self, count: int, *, burst: bool = False, **settings: str) -> list[LocalWorker]:
        """Start ``count`` workers in this event loop (stopped when the fleet closes)."""
        started = []
        for _ in range(count):
            name = f"local-{len(self.local) + 1}"
            env = self.worker_env(RETRAINQ_HEALTH_PORT="0", RETRAINQ_POD_NAME=name, **settings)
            started.append(LocalWorker.start(name, settings_from(env), burst=burst))
            self.local.append(started[-1])
        return started

    async def drain(self, count: int = 1, within: float = 120, **settings: str) -> None:
        """Run ``count`` burst workers until arq's queue is empty: every queued step has run."""
        workers = self.run_workers(count, burst=True, **settings)
        try:
            for worker in workers:
                await worker.finished(within)
        finally:
            for worker in workers:
                await worker.stop()
                self.local.remove(worker)

    def start_workers(self, count: int, **settings: str) -> list[ManagedProcess]:
        """Start ``count`` worker processes configured for this fleet (chaos and security)."""
        env = self.worker_env(**settings)
        started = []
        for _ in range(count):
            index = len(self.workers) + 1
            port = free_port()
            worker = ManagedProcess(
                f"worker-{index}",
                [console_script("retrainq-worker"), "--health-port", str(port)],
                port,
                self.log_dir / f"worker-{index}.log",
                env={**env, "RETRAINQ_POD_NAME": f"worker-{index}"},
            )
            # One at a time: a port picked for the next worker could be taken meanwhile by a
            # booting worker's own connections.
            worker.start(timeout=60)
            self.workers.append(worker)
            started.append(worker)
        return started

    def stop_workers(self) -> None:
        """Stop every worker this fleet started (side by side: each waits for its exit)."""
        with ThreadPoolExecutor(max_workers=len(self.workers) or 1) as stopping:
            list(stopping.map(lambda worker: worker.stop(), self.workers))

    # --- tenants and runs --------------------------------------------------------------------

    async def onboard(
        self,
        tenant_id: str,
        kind: str = "classic",
        *,
        rows: int = 300,
        drift: bool = False,
        **fields: Any,
    ) -> Tenant:
        """Upload generated data for a tenant and store the tenant."""
        await self.upload(tenant_id, version=1, rows=rows, drift=drift)
        target: ClassicTarget | NewServiceTarget
        if kind == "classic":
            service_id = predictive_service_ids(self.config)["bike-rental"]
            target = ClassicTarget(web_service_id=service_id, resource_name=RESOURCE)
        else:
            target = NewServiceTarget(template_service="bike-rental-template")
        tenant = Tenant(
            id=tenant_id,
            target=target,
            data_path=training_data_path(tenant_id, "v1"),
            data_version=1,
            **fields,
        )
        await self.store.create_tenant(tenant)
        return tenant

    def csv(self, tenant_id: str, rows: int = 300, drift: bool = False) -> str:
        """The tenant's generated training CSV."""
        return datagen.bike_rental_csv(tenant_id, rows, seed=3, drift=drift)

    async def upload(
        self, tenant_id: str, version: int, rows: int = 300, drift: bool = False
    ) -> str:
        """Upload a data version of the tenant and point the tenant at it."""
        path = training_data_path(tenant_id, f"v{version}")
        await self.blobs.upload(path, self.csv(tenant_id, rows, drift).encode())
        return path

    async def retrain(self, tenant_id: str, lane: Lane = Lane.INTERACTIVE) -> str:
        """Ask for a run of the tenant and enqueue its first step."""
        created = await self.store.create_run(RunRequest(tenant_id=tenant_id, lane=lane))
        if created.created:
            await self.queue.advance(created.run_id, 0)
        return created.run_id

    async def wait_terminal(self, run_ids: Iterable[str], within: float = 90) -> list[Run]:
        """Wait until every run has ended; fail with their states if they do not."""
        ids = list(run_ids)
        deadline = time.monotonic() + within
        while True:
            runs = await self.store.get_runs(ids)
            if all(r.state.terminal for r in runs) and len(runs) == len(ids):
                return runs
            if time.monotonic() > deadline:
                states = sorted({r.state.value for r in runs})
                raise AssertionError(f"runs not terminal after {within}s: states {states}")
            await asyncio.sleep(0.2)

    # --- scoring -----------------------------------------------------------------------------

    async def runtime_of(self, tenant: Tenant) -> tuple[str, str]:
        """(runtime base, API key) of the tenant's endpoint or new web service."""
        current = await self.store.get_tenant(tenant.id)
        assert current is not None
        workspace = self.config["workspaces"][0]
        if isinstance(current.target, ClassicTarget):
            url = (
                f"{self.emulator_url}/workspaces/{workspace['id']}/webservices/"
                f"{current.target.web_service_id}/endpoints/{current.endpoint_name}"
            )
            headers = {"Authorization": f"Bearer {workspace['authorization_token']}"}
            async with self.http.get(url, headers=headers) as reply:
                assert reply.status == 200, await reply.text()
                endpoint = await reply.json()
            return endpoint["ApiLocation"], endpoint["PrimaryKey"]
        arm = self.config["arm"]
        url = (
            f"{self.emulator_url}/subscriptions/{arm['subscription_id']}/resourceGroups/"
            f"{arm['resource_groups'][0]}/providers/Microsoft.MachineLearning/webServices/"
            f"{current.service_name}"
        )
        headers = {"Authorization": f"Bearer {arm['token']}"}
        query = "?api-version=2017-01-01"
        async with self.http.get(url + query, headers=headers) as reply:
            assert reply.status == 200, await reply.text()
            service = await reply.json()
        async with self.http.get(url + "/listKeys" + query, headers=headers) as reply:
            assert reply.status == 200, await reply.text()
            keys = await reply.json()
        base = service["properties"]["swaggerLocation"].removesuffix("/swagger.json")
        return base, keys["primary"]

    async def score(self, tenant: Tenant, rows: list[dict[str, str]]) -> list[float]:
        """Predictions of the tenant's deployed model through RRS."""
        base, key = await self.runtime_of(tenant)
        columns = list(rows[0])
        body = {
            "Inputs": {
                "input1": {
                    "ColumnNames": columns,
                    "Values": [[r[c] for c in columns] for r in rows],
                }
            },
            "GlobalParameters": {},
        }
        async with self.http.post(
            f"{base}/execute?api-version=2.0&details=true",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as reply:
            assert reply.status == 200, await reply.text()
            result = await reply.json()
        table = result["Results"]["output1"]["value"]
        index = table["ColumnNames"].index("Scored Labels")
        return [float(v[index]) for v in table["Values"]]

    def expected(
        self, tenant_id: str, rows: list[dict[str, str]], drift: bool = False, data_rows: int = 300
    ) -> list[float]:
        """What a model trained on the tenant's data predicts for ``rows``."""
        model = train(parse_csv(self.csv(tenant_id, data_rows, drift)), self.spec())
        return model.predict(rows)


async def until(check: Callable[[], Awaitable[bool]], within: float, every: float = 0.1) -> float:
    """Wait until ``check()`` holds; returns the seconds it took, fails after ``within``."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while True:
                if await check():
                    return time.monotonic() - started
                await asyncio.sleep(every)
    except TimeoutError:
        name = getattr(check, "__qualname__", repr(check))
        raise AssertionError(f"{name} did not hold within {within:g}s") from None


async def open_fleet(
    redis_url: str, blob_connection_string: str, emulator_url: str, log_dir: Path
) -> Fleet:
    """A fleet on flushed Redis and a reset emulator."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE,
    )
    http = aiohttp.ClientSession()
    blobs = BlobStore(SecretStr(blob_connection_string), "retrainq")
    await blobs.ensure_container()
    async with http.post(f"{emulator_url}/_emulator/reset") as reply:
        assert reply.status < 300
    async with http.get(f"{emulator_url}/_emulator/config") as reply:
        config = await reply.json()
    return Fleet(
        redis_url, blob_connection_string, emulator_url, log_dir, redis, pool, http, blobs, config
    )


async def close_fleet(fleet: Fleet) -> None:
    """Stop workers and close clients."""
    for worker in fleet.local:
        await worker.stop()
    fleet.stop_workers()
    await fleet.http.close()
    await fleet.blobs.close()
    await fleet.pool.aclose()
    await fleet.redis.aclose()


def sample_rows(fleet: Fleet, tenant_id: str, count: int = 5) -> list[dict[str, str]]:
    """Feature rows to score (from a different tenant's pattern, so they are fresh)."""
    rows = parse_csv(datagen.bike_rental_csv(f"probe-{tenant_id}", count, seed=11))
    features = input_columns(fleet.spec().features)
    return [{k: r[k] for k in features} for r in rows]


def started_twice(stats: dict[str, object]) -> dict[str, int]:
    """Output locations that more than one started BES job wrote to."""
    counts = stats["started_jobs_by_output"]
    assert isinstance(counts, dict)
    return {k: v for k, v in counts.items() if v > 1}


def dump(value: object) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(value, default=str)[:2000]
