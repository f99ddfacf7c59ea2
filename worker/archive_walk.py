"""The archiver's reads of one chunk of tenants, in a few pipelined round trips.

A pass walks every tenant; reading each one by one cost about three round trips a tenant
(minutes at 100,000 tenants, longer than the lease). Here a chunk costs at most three: the
tenant records and active-run pointers, then the run ids beyond each tenant's newest
``keep_runs``, then, only for the tenants that have such runs, everything the retention
decision needs (those runs, the newest ids, the model history, the active run, due marks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from worker.archive_policy import GONE, Policy, past_grace, policy_for
from worker.run.ledger import run_of
from worker.run.model import Run
from worker.run.scripts import RUN_FIELDS
from worker.schemas import DeployedModel, Tenant
from worker.settings import ArchiveConfig
from worker.store import Store


@dataclass
class TenantReads:
    """What the retention decision reads of one tenant."""

    tenant_id: str
    tenant: Tenant | None
    gone: bool
    policy: Policy
    older_ids: list[str] = field(default_factory=list)
    older: list[Run] = field(default_factory=list)
    newest: list[str] = field(default_factory=list)
    history: list[DeployedModel] = field(default_factory=list)
    active: Run | None = None
    due: set[str] = field(default_factory=set)


async def read_chunk(
    store: Store, config: ArchiveConfig, tenant_ids: Sequence[str], grace_end: float
) -> list[TenantReads]:
    """The reads of ``tenant_ids``; tenants with no run beyond their newest ``keep_runs``
    come back with empty ``older_ids`` and nothing else read."""
    redis, keys = store.redis, store.keys
    async with redis.pipeline(transaction=False) as pipe:
        for tenant_id in tenant_ids:
            pipe.hmget(keys.tenant(tenant_id), ["doc", "active_run"])
        heads = await pipe.execute()
    reads: list[TenantReads] = []
    actives: list[str | None] = []
    for tenant_id, (doc, active_id) in zip(tenant_ids, heads, strict=True):
        tenant = None if doc is None else Tenant.model_validate_json(doc)
        gone = past_grace(tenant, grace_end)
        policy = GONE if gone else policy_for(config, tenant.retention if tenant else None)
        reads.append(TenantReads(tenant_id, tenant, gone, policy))
        actives.append(active_id)
    limit = config.max_runs_per_pass
    async with redis.pipeline(transaction=False) as pipe:
        for read in reads:
            keep = read.policy.keep_runs
            pipe.zrevrange(keys.tenant_runs(read.tenant_id), keep, keep + limit - 1)
        for read, older_ids in zip(reads, await pipe.execute(), strict=True):
            read.older_ids = list(older_ids)
    busy = [(read, active) for read, active in zip(reads, actives, strict=True) if read.older_ids]
    if busy:
        await _read_details(store, busy)
    return reads


async def _read_details(store: Store, busy: list[tuple[TenantReads, str | None]]) -> None:
    """One round trip for the tenants that have runs beyond their newest ``keep_runs``."""
    redis, keys = store.redis, store.keys
    async with redis.pipeline(transaction=False) as pipe:
        for read, active_id in busy:
            keep, deployed = read.policy.keep_runs, read.policy.keep_deployed
            pipe.zrevrange(keys.tenant_runs(read.tenant_id), 0, keep - 1) if keep else pipe.ping()
            if deployed:
                pipe.lrange(keys.tenant_models(read.tenant_id), 0, deployed - 1)
            else:
                pipe.ping()
            pipe.hmget(keys.run(active_id), RUN_FIELDS) if active_id else pipe.ping()
            for run_id in read.older_ids:
                pipe.hmget(keys.run(run_id), RUN_FIELDS)
                pipe.zscore(keys.due, run_id)
        replies = iter(await pipe.execute())
    for read, active_id in busy:
        newest, history, active = next(replies), next(replies), next(replies)
        read.newest = list(newest) if read.policy.keep_runs else []
        read.history = (
            [DeployedModel.model_validate_json(doc) for doc in history]
            if read.policy.keep_deployed
            else []
        )
        read.active = run_of(active) if active_id else None
        for run_id in read.older_ids:
            run, due = run_of(next(replies)), next(replies)
            if run is not None:
                read.older.append(run)
            if due is not None:
                read.due.add(run_id)
