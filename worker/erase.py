"""Erasing a tenant entirely, for a deletion request: Redis, its archive and its blobs.

Only an offboarded tenant (or one whose record the archiver already moved) is erased. The
erasure holds the archiver's lease, so no pass writes a part of the tenant meanwhile; it
reads the ids of its archived runs from its parts, deletes the blobs, then the Redis records,
so an erasure stopped half-way is finished by asking again (the tenant is still found; index
entries of runs whose parts were already deleted then stay, a few bytes each, naming no part).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from worker.archive_blobs import ArchiveBlobs
from worker.archive_parts import ARCHIVE_PREFIX, decode_part
from worker.archive_records import MODEL_PREFIX, TENANT_PREFIX
from worker.blobs import BlobStore
from worker.run.archive_ledger import ArchiveLedger
from worker.schedules import tenant_schedule_name
from worker.store import Store

LEASE_MS = 120_000


class EraseError(Exception):
    """The tenant cannot be erased now."""


class NotOffboarded(EraseError):
    """The tenant is still onboarded: offboard it first."""


class ArchiverBusy(EraseError):
    """An archiver pass holds the lease; ask again shortly."""


class Erasure(BaseModel):
    """What erasing a tenant removed, counted per kind."""

    tenant_id: str
    runs: int = Field(description="run records deleted from Redis")
    archived_index: int = Field(description="id -> part index entries of archived runs")
    model_history: int = Field(description="model-history entries deleted from Redis")
    redis_keys: int = Field(description="other Redis keys (tenant record, its indices)")
    archive_parts: int = Field(description="archive parts in blob storage (runs, models, record)")
    data_blobs: int = Field(description="training data blobs (data/{tenant}/...)")
    model_blobs: int = Field(description="model and evaluation blobs (models/{tenant}/...)")


async def erasable(store: Store, tenant_id: str) -> bool:
    """Whether anything of the tenant is in Redis; ``NotOffboarded`` while it is onboarded."""
    tenant = await store.get_tenant(tenant_id)
    if tenant is not None:
        if not tenant.deleted:
            raise NotOffboarded(tenant_id)
        return True
    return bool(await store.redis.exists(store.keys.tenant(tenant_id)))


async def erase_tenant(store: Store, blobs: BlobStore, tenant_id: str) -> Erasure:
    """Delete every record and blob of an offboarded tenant; counts of what was removed."""
    ledger = ArchiveLedger(store.redis, store.keys)
    owner = f"erase:{tenant_id}"
    if not await store.ledger.hold_archive_lease(owner, LEASE_MS):
        raise ArchiverBusy(tenant_id)
    try:
        prefixes = ArchiveBlobs(blobs)
        archived_ids = [
            run.id
            for path in await prefixes.paths(f"{ARCHIVE_PREFIX}/{tenant_id}/")
            for run in decode_part(await blobs.download(path))
        ]
        parts = 0
        for prefix in (ARCHIVE_PREFIX, MODEL_PREFIX, TENANT_PREFIX):
            parts += await prefixes.delete_under(f"{prefix}/{tenant_id}/")
        data = await prefixes.delete_under(f"data/{tenant_id}/")
        models = await prefixes.delete_under(f"models/{tenant_id}/")
        await ledger.erase_intents(tenant_id)
        runs = await ledger.erase_runs(tenant_id)
        index = await ledger.erase_archive_index(tenant_id, archived_ids)
        history = await ledger.history_length(tenant_id)
        redis_keys = await ledger.erase_tenant_keys(tenant_id, tenant_schedule_name(tenant_id))
    finally:
        await store.ledger.release_archive_lease(owner)
    return Erasure(
        tenant_id=tenant_id,
        runs=runs,
        archived_index=index,
        model_history=history,
        redis_keys=redis_keys,
        archive_parts=parts,
        data_blobs=data,
        model_blobs=models,
    )
