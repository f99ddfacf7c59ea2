"""Redis records of runs and batches (and, through ``TenantRecords``, tenants), with CAS."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from worker import lua
from worker.blobs import evaluation_path, model_path
from worker.keys import Keys
from worker.redisio import reply
from worker.schemas import (
    Batch,
    BesOutputs,
    Lane,
    Run,
    RunState,
    Tenant,
    utcnow,
)
from worker.tenants import (
    StaleRecord,
    StoreError,
    TenantExists,
    TenantNotFound,
    TenantRecords,
)

__all__ = [
    "RunCreated",
    "RunRequest",
    "StaleRecord",
    "Store",
    "StoreError",
    "TenantExists",
    "TenantNotFound",
    "new_id",
    "now_ms",
]


# A run's hash: its record (``doc``) and the fields others write beside it without a CAS: the
# cancel and rerun flags (API), the poll count (steps and the sweeper) and the id of a BES
# job the sweeper saw ``Finished``.
RUN_FIELDS = ["doc", "cancel", "rerun", "polls", "finished_job"]


def _run_of(fields: Sequence[str | None]) -> Run | None:
    doc, cancel, rerun, polls, finished = fields
    if doc is None:
        return None
    run = Run.model_validate_json(doc)
    run.cancel_requested = run.cancel_requested or cancel == "1"
    run.rerun_requested = run.rerun_requested or rerun == "1"
    run.polls = int(polls or 0)
    run.bes_finished_seen = run.bes_finished_seen or (
        finished is not None and finished == run.bes_job_id
    )
    return run


def now_ms() -> int:
    """Wall-clock milliseconds (scores of Redis sorted sets)."""
    return int(time.time() * 1000)


def new_id() -> str:
    """A new run or batch id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RunRequest:
    """What to retrain: one tenant, in a lane, maybe part of a batch."""

    tenant_id: str
    lane: Lane = Lane.INTERACTIVE
    batch_id: str | None = None
    reason: str = "manual"
    rerun_if_active: bool = False
    rollback_to: str | None = None


@dataclass(frozen=True)
class RunCreated:
    """The outcome of asking for a run: a new run, or the tenant's active one."""

    run_id: str
    created: bool


class Store(TenantRecords):
    """Typed access to retrainq's records (tenants, runs, batches) in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys | None = None,
        run_timeout: timedelta = timedelta(hours=6),
    ) -> None:
        super().__init__(redis, keys or Keys())
        self.run_timeout = run_timeout
        self._save_run = redis.register_script(lua.SAVE_RUN)
        self._create_run = redis.register_script(lua.CREATE_RUN)

    # --- runs ------------------------------------------------------------------------------

    def _new_run(
        self, tenant: Tenant, request: RunRequest, seq: int, *, waiting: bool = False
    ) -> Run:
        run_id = new_id()
        created = utcnow()
        phases = {RunState.QUEUED.value: created}
        if waiting:
            phases[RunState.WAITING_SLOT.value] = created
        return Run(
            id=run_id,
            tenant_id=tenant.id,
            seq=seq,
            lane=request.lane,
            batch_id=request.batch_id,
            reason=request.reason,
            training_service=tenant.training_service,
            data_path=tenant.data_path,
            data_version=tenant.data_version,
            global_parameters=dict(tenant.global_parameters),
            rollback_to=request.rollback_to,
            outputs=BesOutputs(
                model_path=model_path(tenant.id, run_id),
                evaluation_path=evaluation_path(tenant.id, run_id),
            ),
            created_at=created,
            deadline_at=created + self.run_timeout,
            state=RunState.WAITING_SLOT if waiting else RunState.QUEUED,
            phases=phases,
        )

    async def create_run(self, request: RunRequest, tenant: Tenant | None = None) -> RunCreated:
        """A new queued run for the tenant, or its active run (flagged to run once more)."""
        tenant = tenant or await self.get_tenant(request.tenant_id)
        if tenant is None or tenant.deleted:
            raise TenantNotFound(request.tenant_id)
        seq = int(await reply(self.redis.hincrby(self.keys.tenant(tenant.id), "seq", 1)))
        run = self._new_run(tenant, request, seq)
        outcome = await self._create_run(
            keys=self._create_keys(run),
            args=self._create_args(run, request),
        )
        return self._created(request.tenant_id, outcome)

    def _create_keys(self, run: Run) -> list[str]:
        batch_id = run.batch_id
        waiting = run.state is RunState.WAITING_SLOT
        return [
            self.keys.tenant(run.tenant_id),
            self.keys.run(run.id),
            self.keys.due,
            self.keys.tenant_runs(run.tenant_id),
            self.keys.batch(batch_id) if batch_id else self.keys.no_batch,
            self.keys.batch_runs(batch_id) if batch_id else self.keys.no_batch,
            self.keys.waiting(run.training_service, run.lane.value)
            if waiting
            else self.keys.no_batch,
        ]

    def _create_args(self, run: Run, request: RunRequest) -> list[str | int]:
        return [
            run.id,
            run.model_dump_json(),
            now_ms(),
            "1" if request.rerun_if_active else "0",
            self.keys.run_prefix(),
            "1" if request.batch_id else "0",
            "1" if run.state is RunState.WAITING_SLOT else "0",
        ]

    @staticmethod
    def _created(tenant_id: str, outcome: list[int | str]) -> RunCreated:
        status, run_id = int(outcome[0]), str(outcome[1])
        if status < 0:
            raise TenantNotFound(tenant_id)
        return RunCreated(run_id=run_id, created=status == 1)

    async def create_runs(
        self,
        tenants: Sequence[Tenant],
        template: RunRequest,
        waiting: Sequence[bool] | None = None,
    ) -> list[RunCreated]:
        """Runs for many tenants in pipelined round trips (bulk retrains).

        Where ``waiting`` says so, a run is created waiting for a BES slot (no first step).
        """
        waits = list(waiting) if waiting is not None else [False] * len(tenants)
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.hincrby(self.keys.tenant(tenant.id), "seq", 1)
            seqs = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant, seq, wait in zip(tenants, seqs, waits, strict=True):
                request = RunRequest(
                    tenant_id=tenant.id,
                    lane=template.lane,
                    batch_id=template.batch_id,
                    reason=template.reason,
                    rerun_if_active=template.rerun_if_active,
                )
                run = self._new_run(tenant, request, int(seq), waiting=wait)
                await self._create_run(
                    keys=self._create_keys(run),
                    args=self._create_args(run, request),
                    client=pipe,
                )
            outcomes = await pipe.execute()
        return [self._created(t.id, o) for t, o in zip(tenants, outcomes, strict=True)]

    async def get_run(self, run_id: str) -> Run | None:
        """The run with its flags, or None."""
        return _run_of(await reply(self.redis.hmget(self.keys.run(run_id), RUN_FIELDS)))

    async def save_run(
        self,
        run: Run,
        state: RunState,
        *,
        due_in: float | None,
        waiting_key: str | None = None,
        park_in: float | None = None,
        polls: int = 0,
    ) -> Run:
        """Write ``run`` in ``state`` if nobody changed it since it was read.

        ``due_in`` is the delay (s) of the run's next step, or None when no step is pending
        (waiting for a slot, parked with the poll sweeper, or terminal). ``park_in`` parks
        the run with the sweeper, its next poll that many seconds from now; ``polls`` counts
        status polls this step made. Raises ``StaleRecord`` when the CAS loses.
        """
        saved = run.model_copy(
            update={"state": state, "version": run.version + 1, "polls": run.polls + polls}
        )
        saved.updated_at = utcnow()
        if state != run.state:
            saved.phases = {**run.phases, state.value: saved.updated_at}
        now = now_ms()
        due = "" if due_in is None else str(now + int(due_in * 1000))
        ok = await self._save_run(
            keys=[
                self.keys.run(run.id),
                self.keys.due,
                self.keys.batch(run.batch_id) if run.batch_id else self.keys.no_batch,
                self.keys.tenant(run.tenant_id),
                waiting_key or self.keys.no_batch,
                self.keys.polls,
            ],
            args=[
                str(run.version),
                state.value,
                saved.model_dump_json(),
                due,
                run.id,
                str(now) if waiting_key else "",
                str(now),
                "" if park_in is None else str(now + int(park_in * 1000)),
                str(polls),
            ],
        )
        if not ok:
            raise StaleRecord(f"run {run.id} changed under version {run.version}")
        return saved

    async def request_cancel(self, run_id: str) -> bool:
        """Flag a run for cancellation; its next step ends it. False if no such run."""
        key = self.keys.run(run_id)
        if not await self.redis.exists(key):
            return False
        await reply(self.redis.hset(key, "cancel", "1"))
        await self.redis.zadd(self.keys.due, {run_id: now_ms()})
        return True

    async def tenant_run_ids(self, tenant_id: str, offset: int = 0, limit: int = 50) -> list[str]:
        """A tenant's run ids, newest first."""
        ids: list[str] = await self.redis.zrevrange(
            self.keys.tenant_runs(tenant_id), offset, offset + limit - 1
        )
        return ids

    async def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs by id in one round trip (missing ones skipped)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hmget(self.keys.run(run_id), RUN_FIELDS)
            replies = await pipe.execute()
        return [run for run in map(_run_of, replies) if run is not None]

    async def due_runs(self, before_ms: int, limit: int = 1000) -> list[str]:
        """Non-terminal runs whose next step was due before ``before_ms``."""
        ids: list[str] = await self.redis.zrangebyscore(
            self.keys.due, "-inf", before_ms, start=0, num=limit
        )
        return ids

    async def is_due(self, run_id: str) -> bool:
        """Whether a run is on the reconciler's list (a step or tail work is pending)."""
        return await reply(self.redis.zscore(self.keys.due, run_id)) is not None

    async def create_followup(self, run_id: str, request: RunRequest) -> RunCreated:
        """The run that follows ``run_id`` (a requested rerun), created at most once."""
        key = self.keys.run(run_id)
        existing = await reply(self.redis.hget(key, "followup"))
        if existing is not None:
            return RunCreated(run_id=str(existing), created=False)
        # A retry after a crash finds the follow-up active and gets it back, not a second one.
        created = await self.create_run(request)
        await reply(self.redis.hsetnx(key, "followup", created.run_id))
        return created

    async def not_due(self, run_id: str) -> None:
        """Take a run off the reconciler's list (it waits for a slot, with no step pending)."""
        await reply(self.redis.zrem(self.keys.due, run_id))

    async def run_version(self, run_id: str) -> int | None:
        """The stored version of a run (for per-step arq job ids)."""
        version = await reply(self.redis.hget(self.keys.run(run_id), "version"))
        return None if version is None else int(version)

    # --- batches ---------------------------------------------------------------------------

    async def create_batch(self, batch: Batch) -> None:
        """Store a batch record before its runs are created."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.batch(batch.id), mapping={"doc": batch.model_dump_json()})
            pipe.zadd(self.keys.batches, {batch.id: batch.created_at.timestamp()})
            await pipe.execute()

    async def get_batch(self, batch_id: str) -> tuple[Batch, dict[str, int]] | None:
        """The batch and its counters (``n:<state>`` counts, finish times in ms)."""
        raw = await reply(self.redis.hgetall(self.keys.batch(batch_id)))
        if not raw or "doc" not in raw:
            return None
        counters = {k: int(v) for k, v in raw.items() if k != "doc"}
        return Batch.model_validate_json(raw["doc"]), counters

    async def batch_run_ids(self, batch_id: str, offset: int = 0, limit: int = 1000) -> list[str]:
        """Run ids of a batch in creation order."""
        ids: list[str] = await reply(
            self.redis.lrange(self.keys.batch_runs(batch_id), offset, offset + limit - 1)
        )
        return ids

    async def idempotent_run(self, scope: str, key: str) -> str | None:
        """The run an ``Idempotency-Key`` produced earlier, or None."""
        run_id: str | None = await self.redis.get(self.keys.idempotency(scope, key))
        return run_id

    async def remember_idempotent(self, scope: str, key: str, run_id: str, ttl: timedelta) -> str:
        """Record ``run_id`` for an ``Idempotency-Key``; returns the run that won a race."""
        name = self.keys.idempotency(scope, key)
        if await self.redis.set(name, run_id, nx=True, ex=ttl):
            return run_id
        winner: str | None = await self.redis.get(name)
        return winner or run_id

    async def count_request(self, key_id: str, window_seconds: int) -> tuple[int, float]:
        """Count one request of an API key in its fixed window: (count, seconds left)."""
        now = time.time()
        window = int(now // window_seconds)
        name = self.keys.rate_limit(key_id, window)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds + 1)
            count, _ = await pipe.execute()
        return int(count), (window + 1) * window_seconds - now
