"""The archiver's other records: finished batches as summaries, model history beyond K.

Both go to blob storage the way runs do (an intent, then an immutable gzip JSON Lines part,
then one script that removes what the part holds and clears the intent), so a crash leaves
each batch or history entry in Redis or in exactly one part:

- ``archive/batches/{yyyy-mm}/part-{pass}.jsonl.gz``: summaries (record and counts by
  state, no run list) of batches whose runs all ended more than ``keep_days`` ago, by month
  of creation; ``archived:batches`` maps each id to its part.
- ``archive/models/{tenant}/part-{pass}.jsonl.gz``: a tenant's model-history entries past
  its newest ``keep_deployed`` (rollback needs only those), once there are
  ``min_part_runs`` of them.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from worker.archive_policy import past_grace, policy_for
from worker.blobs import BlobNotFoundError, BlobStore, BlobStoreError
from worker.failpoints import Failpoints
from worker.records import Record
from worker.run.archive_ledger import ArchiveLedger
from worker.schemas import TERMINAL_STATES, Batch, Lane, RunState
from worker.settings import ArchiveConfig
from worker.store import Store

BATCH_PREFIX = "archive/batches"
MODEL_PREFIX = "archive/models"
TENANT_PREFIX = "archive/tenants"
TENANT_CHUNK = 500
Kind = Literal["runs", "batches", "models", "tenant"]


async def write_once(blobs: BlobStore, part: str, data: bytes) -> bool:
    """Write a new part: True, or False when a part of that name was written meanwhile (parts
    are never overwritten)."""
    try:
        await blobs.upload(part, data, overwrite=False)
    except BlobStoreError:
        if not await blobs.exists(part):
            raise
        return False
    return True


class LeaseLost(Exception):
    """Another worker holds the archiver's lease now: this pass stops."""


async def renew_lease(store: Store, owner: str, config: ArchiveConfig) -> None:
    """Extend the pass's lease by ``lease_seconds``; LeaseLost when it lapsed or was taken
    (a pass never takes it back mid-walk: another pass may have run meanwhile)."""
    if not await store.ledger.renew_archive_lease(owner, int(config.lease_seconds * 1000)):
        raise LeaseLost(owner)


class Intent(BaseModel):
    """What a part about to be written holds: its kind, tenant (runs and models), where it
    is, and the run ids, batch ids or model-history entries (JSON) it takes from Redis."""

    kind: Kind = "runs"
    tenant_id: str = ""
    where: str
    ids: list[str]


class BatchSummary(Record):
    """What the archive keeps of a finished batch: its record and its runs' final states."""

    id: str
    lane: Lane
    total: int
    created_at: datetime
    reason: str
    counts: dict[str, int] = Field(description="runs by final state")
    first_finished_at: datetime | None = None
    last_finished_at: datetime | None = None


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def summarise(batch: Batch, counters: dict[str, int]) -> BatchSummary:
    """A batch's summary from its record and counters (``n:<state>``, finish times in ms)."""
    counts = {s.value: counters[f"n:{s.value}"] for s in RunState if counters.get(f"n:{s.value}")}
    return BatchSummary(
        id=batch.id,
        lane=batch.lane,
        total=batch.total,
        created_at=batch.created_at,
        reason=batch.reason,
        counts=counts,
        first_finished_at=_at(counters.get("first_finished_ms")),
        last_finished_at=_at(counters.get("last_finished_ms")),
    )


def batch_archivable(batch: Batch, counters: dict[str, int], cutoff: datetime) -> bool:
    """Whether every run of the batch ended, the last one before ``cutoff``."""
    done = sum(counters.get(f"n:{state.value}", 0) for state in TERMINAL_STATES)
    ended = _at(counters.get("last_finished_ms")) or batch.created_at
    return done >= batch.total and ended < cutoff


def history_beyond(length: int, keep: int) -> int:
    """How many of a history's oldest entries are past its newest ``keep``."""
    return max(0, length - keep)


def batch_part(where: str) -> str:
    """The blob path of a batch-summary part from its index form ``{yyyy-mm}/{pass}``."""
    month, pass_id = where.split("/")
    return f"{BATCH_PREFIX}/{month}/part-{pass_id}.jsonl.gz"


def model_part(tenant_id: str, pass_id: str) -> str:
    """The blob path of a model-history part."""
    return f"{MODEL_PREFIX}/{tenant_id}/part-{pass_id}.jsonl.gz"


def tenant_part(tenant_id: str, pass_id: str) -> str:
    """The blob path of an offboarded tenant's archived record."""
    return f"{TENANT_PREFIX}/{tenant_id}/record-{pass_id}.jsonl.gz"


def encode_lines(lines: Sequence[str]) -> bytes:
    """gzip JSON Lines of ``lines`` in their order, without a timestamp."""
    return gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)


def decode_lines(data: bytes) -> list[str]:
    """The JSON lines of a part."""
    return [line for line in gzip.decompress(data).decode().splitlines() if line]


@dataclass
class RecordsReport:
    """What one pass did to batches and model histories."""

    batches: int = 0
    models: int = 0
    parts: list[str] | None = None


class RecordArchiver:
    """Batch summaries and model-history trimming, within an archiver's pass."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        config: ArchiveConfig,
        owner: str,
        failpoints: Failpoints | None = None,
        *,
        chunk: int = TENANT_CHUNK,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.config = config
        self.owner = owner
        self.failpoints = failpoints or Failpoints([])
        self.chunk = chunk
        self.ledger = ArchiveLedger(store.redis, store.keys)

    async def batches(self, now: datetime, pass_id: str, parts: list[str]) -> int:
        """Archive the finished batches past ``keep_days``: batches removed."""
        cutoff = now - timedelta(days=self.config.keep_days)
        by_month: dict[str, list[str]] = defaultdict(list)
        ids = await self.ledger.old_batch_ids(cutoff.timestamp(), self.config.max_runs_per_pass)
        for batch_id in ids:
            found = await self.store.get_batch(batch_id)
            if found is not None and batch_archivable(*found, cutoff):
                by_month[found[0].created_at.strftime("%Y-%m")].append(batch_id)
        removed = 0
        for month, batch_ids in by_month.items():
            where = f"{month}/{pass_id}"
            intent = Intent(kind="batches", where=where, ids=sorted(batch_ids))
            removed += await self._start(batch_part(where), intent, parts)
        return removed

    async def models(self, pass_id: str, parts: list[str], grace_end: float) -> int:
        """Archive every tenant's model-history entries past its ``keep_deployed`` (all of
        an offboarded tenant's past its grace period, which ended at ``grace_end``), a chunk
        of tenants at a time: the lease renewed, then two round trips for the chunk."""
        removed = 0
        total = await self.store.count_tenants()
        for offset in [*range(0, total, self.chunk), -1]:
            await renew_lease(self.store, self.owner, self.config)
            if offset < 0:
                ids = await self.ledger.offboarded_before(grace_end, TENANT_CHUNK)
            else:
                ids = await self.store.list_tenant_ids(offset, self.chunk)
            tenants = await self.store.get_tenants(ids)
            lengths = await self.ledger.history_lengths([tenant.id for tenant in tenants])
            for tenant, length in zip(tenants, lengths, strict=True):
                keep = policy_for(self.config, tenant.retention).keep_deployed
                if past_grace(tenant, grace_end):
                    keep = 0
                extra = history_beyond(length, keep)
                if not extra or (keep and extra < self.config.min_part_runs):
                    continue  # entries wait for a part of several, like runs
                entries = await self.ledger.model_tail(tenant.id, extra)
                intent = Intent(kind="models", tenant_id=tenant.id, where=pass_id, ids=entries)
                removed += await self._start(model_part(tenant.id, pass_id), intent, parts)
        return removed

    async def tenants(self, pass_id: str, parts: list[str], grace_end: float) -> int:
        """Archive the records of tenants offboarded before ``grace_end`` whose runs and
        model history have left Redis: records archived."""
        archived = 0
        for tenant_id in await self.ledger.offboarded_before(grace_end, TENANT_CHUNK):
            tenant = await self.store.get_tenant(tenant_id)
            if tenant is None or not past_grace(tenant, grace_end):
                continue
            if await self.ledger.holds_records(tenant_id):
                continue  # its runs or history move first (a later pass, if over budget)
            intent = Intent(
                kind="tenant", tenant_id=tenant_id, where=pass_id, ids=[tenant.model_dump_json()]
            )
            archived += await self._start(tenant_part(tenant_id, pass_id), intent, parts)
        return archived

    async def _start(self, part: str, intent: Intent, parts: list[str]) -> int:
        await renew_lease(self.store, self.owner, self.config)
        if not await self.store.ledger.record_archive_intent(
            self.owner, part, intent.model_dump_json()
        ):
            raise LeaseLost(self.owner)
        await self.failpoints.hit("archive.after_intent", part)
        return await self.carry_out(part, intent, parts)

    async def carry_out(self, part: str, intent: Intent, parts: list[str]) -> int:
        """Write the part of a batch or model intent unless written, then remove from Redis
        what it holds: the records removed."""
        if intent.kind == "batches":
            if not await self.blobs.exists(part):
                found = [await self.store.get_batch(batch_id) for batch_id in intent.ids]
                lines = [summarise(*f).model_dump_json() for f in found if f is not None]
                await self._write(part, lines)
            await self.failpoints.hit("archive.after_write", part)
            removed = await self.ledger.remove_batches(self.owner, part, intent.where, intent.ids)
        elif intent.kind == "tenant":
            if not await self.blobs.exists(part):
                await self._write(part, intent.ids)
            await self.failpoints.hit("archive.after_write", part)
            removed = await self.ledger.remove_tenant(self.owner, part, intent.tenant_id)
        else:
            if not await self.blobs.exists(part):
                await self._write(part, intent.ids)
            await self.failpoints.hit("archive.after_write", part)
            removed = await self.ledger.trim_models(self.owner, part, intent.tenant_id, intent.ids)
        if removed < 0:
            raise LeaseLost(self.owner)
        parts.append(part)
        await self.failpoints.hit("archive.after_remove", part)
        return removed

    async def _write(self, part: str, lines: Sequence[str]) -> None:
        await write_once(self.blobs, part, encode_lines(lines))


class ArchivedBatches:
    """Reads of archived batch summaries: the id -> part index, then the part."""

    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self.ledger = ArchiveLedger(store.redis, store.keys)
        self.blobs = blobs

    async def find_batch(self, batch_id: str) -> BatchSummary | None:
        """The archived summary of ``batch_id``, or None."""
        where = await self.ledger.archived_batch_at(batch_id)
        if where is None:
            return None
        try:
            lines = decode_lines(await self.blobs.download(batch_part(where)))
        except BlobNotFoundError:
            return None
        for line in lines:
            summary = BatchSummary.model_validate_json(line)
            if summary.id == batch_id:
                return summary
        return None
