"""Redis records of runs and batches (and, through ``TenantRecords``, tenants), with CAS."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from worker.blobs import evaluation_path, model_path
from worker.bulk_order import BulkOrder
from worker.keys import Keys
from worker.redisio import reply
from worker.run.ledger import Ledger, NewRun
from worker.run.scripts import now_ms
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
        bulk_order: BulkOrder = "longest_first",
    ) -> None:
        super().__init__(redis, keys or Keys())
        self.run_timeout = run_timeout
        # Every write of a run and its indices goes through the ledger.
        self.ledger = Ledger(redis, self.keys, bulk_order)

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
        run = self._new_run(tenant, request, await self.ledger.next_seq(tenant.id))
        [outcome] = await self.ledger.create([NewRun(run, request.rerun_if_active)])
        return self._created(request.tenant_id, outcome)

    @staticmethod
    def _created(tenant_id: str, outcome: tuple[int, str]) -> RunCreated:
        status, run_id = outcome
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
        seqs = await self.ledger.next_seqs([tenant.id for tenant in tenants])
        new = []
        for tenant, seq, wait in zip(tenants, seqs, waits, strict=True):
            request = RunRequest(
                tenant_id=tenant.id,
                lane=template.lane,
                batch_id=template.batch_id,
                reason=template.reason,
                rerun_if_active=template.rerun_if_active,
            )
            run = self._new_run(tenant, request, seq, waiting=wait)
            new.append(NewRun(run, template.rerun_if_active))
        outcomes = await self.ledger.create(new)
        return [self._created(t.id, o) for t, o in zip(tenants, outcomes, strict=True)]

    async def get_run(self, run_id: str) -> Run | None:
        """The run with its flags, or None."""
        return await self.ledger.load(run_id)

    async def request_cancel(self, run_id: str) -> bool:
        """Flag a run for cancellation; its next step ends it. False if no such run."""
        return await self.ledger.request_cancel(run_id)

    async def tenant_run_ids(self, tenant_id: str, offset: int = 0, limit: int = 50) -> list[str]:
        """A tenant's run ids, newest first."""
        ids: list[str] = await self.redis.zrevrange(
            self.keys.tenant_runs(tenant_id), offset, offset + limit - 1
        )
        return ids

    async def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs by id in one round trip (missing ones skipped)."""
        return await self.ledger.load_many(run_ids)

    async def is_due(self, run_id: str) -> bool:
        """Whether a run is on the reconciler's list (a step or tail work is pending)."""
        return await self.ledger.is_due(run_id)

    async def create_followup(self, run_id: str, request: RunRequest) -> RunCreated:
        """The run that follows ``run_id`` (a requested rerun), created at most once."""
        existing = await self.ledger.followup(run_id)
        if existing is not None:
            return RunCreated(run_id=existing, created=False)
        # A retry after a crash finds the follow-up active and gets it back, not a second one.
        created = await self.create_run(request)
        await self.ledger.record_followup(run_id, created.run_id)
        return created

    # --- batches ---------------------------------------------------------------------------

    async def create_batch(self, batch: Batch) -> None:
        """Store a batch record before its runs are created."""
        await self.ledger.create_batch_record(batch.id, batch.model_dump_json(), batch.created_at)

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
