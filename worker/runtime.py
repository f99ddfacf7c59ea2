"""Builds the arq ``Worker`` for retrainq: functions, crons, serializer, lifecycle hooks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import timedelta
from typing import Any, TypedDict, cast

import aiohttp
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from arq.connections import ArqRedis, RedisSettings
from arq.cron import cron
from arq.typing import StartupShutdown, WorkerCoroutine
from arq.worker import Retry, Worker, func
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker.archive import Archiver
from worker.azureml.arm import ArmClient, StaticToken, TokenProvider
from worker.azureml.bes import BesClient
from worker.azureml.classic import EndpointsClient
from worker.azureml.identity import AzureIdentityToken
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.router import TrainingRouter
from worker.azureml_v2.wiring import V2Wiring
from worker.blobs import BlobStore
from worker.classic import ClassicTraining
from worker.deploy import Deployer
from worker.deps import Deps
from worker.failpoints import Failpoints
from worker.health import start_health_server
from worker.keys import Keys
from worker.liveness import Liveness, worker_id_for
from worker.locks import Locks
from worker.metrics import METRICS
from worker.offboard import remove_remote
from worker.parking import DurationEstimates, ParkedRuns
from worker.queue import ADVANCE, OFFBOARD, StepQueue
from worker.reconciler import reconcile as reconcile_runs
from worker.redis_full import PAUSE_SECONDS as FULL_PAUSE_SECONDS
from worker.redis_full import FullRedis, is_full
from worker.run.slots import Slots
from worker.schedules import Schedules
from worker.serialization import deserialize, serialize
from worker.settings import WorkerSettings
from worker.steps import Stepper
from worker.store import Store
from worker.sweeper import Sweeper

log = structlog.get_logger("retrainq.worker")


class WorkerContext(TypedDict, total=False):
    """arq's ``ctx`` of a retrainq worker: arq's own keys and what ``on_startup`` adds."""

    redis: ArqRedis
    job_id: str
    job_try: int
    stepper: Stepper
    schedules: Schedules
    liveness: Liveness
    arm_token: TokenProvider
    health: web.AppRunner
    started: float
    sweeper: asyncio.Task[None]
    gauges: asyncio.Task[None]
    liveness_loop: asyncio.Task[None]
    archiver: asyncio.Task[None]
    full_redis: FullRedis


# Inside one step a call may be retried once, quickly; longer waits are new deferred steps.
STEP_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)

# A Redis restart or failover drops every connection for a few seconds. Redis calls retry
# through it (backoff capped at 1 s, about 15 s in all) instead of failing the step at once.
REDIS_RETRY_ON: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]
REDIS_OUTAGE_PAUSE = 1.0
GAUGE_INTERVAL_SECONDS = 5.0


def redis_retry() -> RedisRetry:
    """The retry policy of every Redis client of a worker."""
    return RedisRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=20)


class ResilientWorker(Worker):
    """arq's worker, except that a Redis outage pauses its poll loop instead of ending it.

    arq 0.28 lets any Redis error raised in its poll loop escape ``Worker.main``, so the
    process exits when Redis restarts. A connection dropped between WATCH and EXEC surfaces
    as ``WatchError`` even with retries configured (arq handles a genuine WatchError itself).
    Steps cut short this way re-run when their in-progress key expires or are re-enqueued by
    the reconciler.

    arq's ``start_jobs`` takes a job slot (a permit of ``sem`` and one of ``job_counter``) for
    each job before its Redis calls, and gives it back only on its own error paths or when the
    job's task ends. An error that escapes in between leaves the slot taken for good, so every
    outage that hits a job start would cost the worker one of its ``max_jobs`` slots; after
    ``max_jobs`` such outages it would run nothing. So after the pause the worker gives back
    the slots that no job task holds.
    """

    async def _poll_iteration(self) -> None:
        """One arq poll; on a Redis error, pause and give back the job slots it left taken.

        A Redis that refuses writes (full) pauses the loop the same way, said once a minute.
        """
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, WatchError) as exc:
            log.warning("worker.redis_unavailable", error=str(exc))
            await asyncio.sleep(REDIS_OUTAGE_PAUSE)
            await self._recover_slots()
        except ResponseError as exc:
            if not is_full(exc):
                raise
            full: FullRedis = self.ctx["full_redis"]
            full.refusal("poll")
            await asyncio.sleep(FULL_PAUSE_SECONDS)
            await self._recover_slots()

    async def _recover_slots(self) -> None:
        """Give back every job slot taken beyond those the unfinished job tasks hold."""
        lost = self.job_counter - await self._slots_held()
        for _ in range(lost):
            self.job_counter -= 1
            self.sem.release()
        if lost > 0:
            log.warning("worker.slots_recovered", slots=lost, max_jobs=self.max_jobs)

    async def _slots_held(self) -> int:
        """How many job tasks still hold their slot."""
        tasks = list(self.tasks.values())
        ended = [task.done() for task in tasks]
        # A task gives its slot back in a done callback that runs a loop turn after it ends, so
        # a task seen done may not have given it back yet. Wait for a turn in which no task
        # ends: then every ended task has given back its slot. Tasks end once, so this stops.
        while True:
            await asyncio.sleep(0)
            now = [task.done() for task in tasks]
            if now == ended:
                return ended.count(False)
            ended = now


def _api_of(url: str) -> str:
    if "/Microsoft.MachineLearningServices/" in url:
        return "azureml_v2"
    if "/jobs" in url:
        return "bes"
    if "/webServices" in url:
        return "arm"
    if "/endpoints" in url:
        return "management"
    if "/execute" in url:
        return "rrs"
    return "other"


def _trace_config() -> aiohttp.TraceConfig:
    """Counts every Azure ML call by API and status (no URLs or tenants in labels)."""
    trace = aiohttp.TraceConfig()

    async def on_end(
        _session: aiohttp.ClientSession, _ctx: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        METRICS.remote_calls.labels(_api_of(str(params.url)), str(params.response.status)).inc()

    async def on_error(
        _session: aiohttp.ClientSession,
        _ctx: Any,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        METRICS.remote_calls.labels(_api_of(str(params.url)), "error").inc()

    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_error)
    return trace


def arm_token_provider(settings: WorkerSettings) -> TokenProvider:
    """The ARM token source the settings ask for: a static token or azure-identity."""
    if settings.azureml.arm_auth == "azure_identity":
        return AzureIdentityToken()
    return StaticToken(settings.azureml.arm_token)


def build_deps(
    settings: WorkerSettings,
    redis: aioredis.Redis,
    pool: ArqRedis,
    session: aiohttp.ClientSession,
    blobs: BlobStore,
    arm_token: TokenProvider,
) -> Deps:
    """Wire stores and clients from settings (no I/O)."""
    keys = Keys(settings.redis.prefix)
    azureml = settings.azureml
    timeout = azureml.request_timeout_seconds
    bes = {
        (name, index): BesClient(
            session, endpoint.url, endpoint.api_key, STEP_RETRY, timeout_seconds=timeout
        )
        for name, service in settings.training_services.items()
        if service.backend == "classic"
        for index, endpoint in enumerate(service.endpoints)
    }
    parked = ParkedRuns(redis, keys)
    v2 = V2Wiring(settings, session, blobs, arm_token, STEP_RETRY)
    store = Store(
        redis,
        keys,
        run_timeout=timedelta(seconds=settings.run_timeout_seconds),
        bulk_order=settings.bulk_order,
    )
    deps = Deps(
        settings=settings,
        store=store,
        ledger=store.ledger,
        slots=Slots(
            redis,
            keys,
            store.ledger,
            settings.training_services,
            settings.lease_seconds,
            settings.bulk_every,
        ),
        locks=Locks(redis),
        queue=StepQueue(pool, settings.redis.queue_name),
        blobs=blobs,
        session=session,
        endpoints=EndpointsClient(
            session,
            azureml.management_url,
            azureml.workspace_id,
            azureml.workspace_token,
            STEP_RETRY,
            timeout_seconds=timeout,
        ),
        arm=ArmClient(
            session,
            azureml.arm_url,
            azureml.subscription_id,
            azureml.resource_group,
            arm_token,
            STEP_RETRY,
            timeout_seconds=timeout,
        ),
        parked=parked,
        estimates=DurationEstimates(parked),
        training=TrainingRouter(
            v2.training(),
            default=ClassicTraining(
                bes,
                settings.training_services,
                blobs,
                timedelta(seconds=settings.blob.sas_ttl_seconds),
                settings.shared_data_prefixes,
            ),
        ),
        failpoints=Failpoints(settings.failpoints, redis, keys),
    )
    deps.deployer = Deployer(deps, v2.pools())
    return deps


async def advance(ctx: WorkerContext, run_id: str) -> None:
    """arq job: advance one run by one step (or a few instant ones).

    A write Redis refused (full) leaves the run as it was and still due: the reconciler
    enqueues it again once Redis has room.
    """
    stepper = ctx["stepper"]
    try:
        await stepper.advance(run_id)
    except ResponseError as exc:
        if not is_full(exc):
            raise
        ctx["full_redis"].refusal("step")


async def offboard(ctx: WorkerContext, tenant_id: str) -> str:
    """arq job: remove an offboarded tenant's endpoint or web service (retried with backoff)."""
    stepper = ctx["stepper"]
    attempt = int(ctx.get("job_try", 1))
    outcome = await remove_remote(stepper.deps, tenant_id, attempt)
    if outcome == "retry":
        raise Retry(defer=min(60, 2**attempt))
    return outcome


async def reconcile(ctx: WorkerContext) -> int:
    """arq cron: re-enqueue runs whose next step is overdue, and fill free slots."""
    stepper = ctx["stepper"]
    try:
        return await reconcile_runs(stepper.deps, stepper.dispatch)
    except ResponseError as exc:
        if not is_full(exc):
            raise
        ctx["full_redis"].refusal("reconciler")
        return 0


async def fire_schedules(ctx: WorkerContext) -> int:
    """arq cron: turn due schedule slots into runs and batches (once per slot, fleet-wide)."""
    schedules = ctx["schedules"]
    try:
        return await schedules.fire_due()
    except ResponseError as exc:
        if not is_full(exc):
            raise
        ctx["full_redis"].refusal("schedules")
        return 0


async def sample_gauges_forever(ctx: WorkerContext) -> None:
    """Sample the gauges every few seconds until cancelled, in every worker.

    Not an arq cron job: arq runs each cron tick on one worker of the fleet, and a gauge
    left unsampled keeps its last value, so the workers' exports would disagree and an old
    backlog could hold the autoscaler up. Errors (a Redis outage) skip a sample.
    """
    while True:
        try:
            await sample_gauges(ctx)
        except Exception as exc:  # a failed sample is skipped; the next one may succeed
            log.warning("gauges.failed", error=str(exc))
        await asyncio.sleep(GAUGE_INTERVAL_SECONDS)


async def sample_redis_memory(redis: aioredis.Redis) -> float:
    """Set the gauge of Redis ``used_memory / maxmemory`` (0 with no maxmemory) and return it."""
    info = await redis.info("memory")
    limit = int(info.get("maxmemory", 0))
    ratio = int(info["used_memory"]) / limit if limit else 0.0
    METRICS.redis_memory_used.set(ratio)
    return ratio


async def sample_gauges(ctx: WorkerContext) -> None:
    """Backlog, slot and throttle gauges (the ready backlog drives autoscaling), read through
    the same view as the dashboard's fleet route."""
    from worker.views import FleetViews

    stepper = ctx["stepper"]
    load = await FleetViews.of(stepper.deps.store, stepper.deps.settings).load()
    for service in load.services:
        METRICS.slots_in_use.labels(service.name).set(service.in_use)
        METRICS.service_throttled.labels(service.name).set(1 if service.throttled else 0)
    for kind, count in load.backlog.by_kind().items():
        METRICS.backlog.labels(kind).set(count)
    METRICS.bes_in_flight.set(load.in_flight)
    await sample_redis_memory(stepper.deps.store.redis)


async def step_started(ctx: WorkerContext) -> None:
    """arq hook: record the job this worker now runs (best effort: recovery then waits for
    arq's in-progress TTL instead)."""
    liveness = ctx.get("liveness")
    if liveness is not None:
        try:
            await liveness.step_started(ctx["job_id"])
        except RedisError as exc:
            _record_failed(ctx, exc)


async def step_ended(ctx: WorkerContext) -> None:
    """arq hook: the job ended (or was given back to arq)."""
    liveness = ctx.get("liveness")
    if liveness is not None:
        try:
            await liveness.step_ended(ctx["job_id"])
        except RedisError as exc:
            _record_failed(ctx, exc)


def _record_failed(ctx: WorkerContext, exc: RedisError) -> None:
    if is_full(exc):
        ctx["full_redis"].refusal("liveness")
    else:
        log.warning("liveness.record_failed", error=str(exc))


def build_worker(settings: WorkerSettings, *, burst: bool = False) -> Worker:
    """An arq worker configured from ``settings``.

    A ``burst`` worker exits once arq's queue is empty, so it polls BES jobs with deferred
    arq jobs rather than the sweeper (parked runs are not on arq's queue).
    """
    if burst:
        settings = settings.model_copy(update={"poll_sweeper": False})

    async def on_startup(ctx: WorkerContext) -> None:
        redis = aioredis.Redis.from_url(
            settings.redis.url.get_secret_value(),
            decode_responses=True,
            retry=redis_retry(),
            retry_on_error=REDIS_RETRY_ON,
        )
        session = aiohttp.ClientSession(trace_configs=[_trace_config()])
        blobs = BlobStore.from_config(settings.blob)
        await blobs.ensure_container()
        arm_token = arm_token_provider(settings)
        ctx["arm_token"] = arm_token
        deps = build_deps(settings, redis, ctx["redis"], session, blobs, arm_token)
        ctx["stepper"] = Stepper(deps)
        liveness = Liveness(
            redis,
            deps.store.keys,
            deps.ledger,
            worker_id_for(settings.pod_name),
            ttl_seconds=settings.heartbeat_seconds * 3,
            beat_seconds=settings.heartbeat_seconds,
            full_redis=ctx["full_redis"],
        )
        await liveness.beat()
        ctx["liveness"] = liveness
        ctx["liveness_loop"] = asyncio.create_task(liveness.run_forever(), name="liveness")
        if settings.poll_sweeper:
            sweeper = Sweeper(
                deps,
                ctx["stepper"].dispatch,
                batch=settings.sweep_batch,
                concurrency=settings.sweep_concurrency,
                claim_seconds=settings.sweep_claim_seconds,
                owner=liveness.worker_id,
                full_redis=ctx["full_redis"],
            )
            ctx["sweeper"] = asyncio.create_task(sweeper.run_forever(), name="sweeper")
        ctx["gauges"] = asyncio.create_task(sample_gauges_forever(ctx), name="gauges")
        if settings.archive.enabled:
            archiver = Archiver(
                deps.store, blobs, settings.archive, liveness.worker_id, deps.failpoints
            )
            ctx["archiver"] = asyncio.create_task(archiver.run_forever(), name="archiver")
        ctx["schedules"] = Schedules(redis, deps.store, deps.queue, settings.training_services)
        ctx["health"] = await start_health_server("0.0.0.0", settings.health_port)  # noqa: S104
        ctx["started"] = time.monotonic()
        log.info(
            "worker.ready", services=sorted(settings.training_services), worker=liveness.worker_id
        )

    async def on_shutdown(ctx: WorkerContext) -> None:
        loops = (ctx.get("sweeper"), ctx.get("gauges"), ctx.get("archiver"))
        for loop in (*loops, ctx.get("liveness_loop")):
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        runner = ctx.get("health")
        if runner is not None:
            await runner.cleanup()
        liveness = ctx.get("liveness")
        if liveness is not None:
            with contextlib.suppress(RedisError):  # its heartbeat lapses all the same
                await liveness.leave()
        stepper = ctx.get("stepper")
        if stepper is not None:
            await stepper.deps.session.close()
            await stepper.deps.blobs.close()
            await stepper.deps.store.redis.aclose()
        token = ctx.get("arm_token")
        if isinstance(token, AzureIdentityToken):
            await token.close()
        log.info("worker.stopped")

    every = set(range(0, 60, 2))
    timeout = settings.job_timeout_seconds
    return ResilientWorker(
        functions=[
            func(cast(WorkerCoroutine, advance), name=ADVANCE, timeout=timeout),
            func(cast(WorkerCoroutine, offboard), name=OFFBOARD, timeout=timeout),
        ],
        cron_jobs=[
            cron(
                cast(WorkerCoroutine, reconcile), second=every, run_at_startup=True, timeout=timeout
            ),
            cron(
                cast(WorkerCoroutine, fire_schedules), second=set(range(0, 60, 10)), timeout=timeout
            ),
        ],
        redis_settings=dataclasses.replace(
            RedisSettings.from_dsn(settings.redis.url.get_secret_value()),
            retry=redis_retry(),
            retry_on_error=REDIS_RETRY_ON,
        ),
        queue_name=settings.redis.queue_name,
        burst=burst,
        max_jobs=settings.max_jobs,
        job_timeout=timeout,
        keep_result=0,
        max_tries=1000,
        poll_delay=0.05,
        queue_read_limit=max(1000, settings.max_jobs * 5),
        job_completion_wait=timeout,
        on_startup=cast(StartupShutdown, on_startup),
        on_shutdown=cast(StartupShutdown, on_shutdown),
        on_job_start=cast(StartupShutdown, step_started),
        after_job_end=cast(StartupShutdown, step_ended),
        health_check_interval=settings.health_check_interval_seconds,
        health_check_key=f"{settings.redis.queue_name}:health:{settings.pod_name}",
        job_serializer=serialize,
        job_deserializer=deserialize,
        ctx={"full_redis": FullRedis()},
    )
