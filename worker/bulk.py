"""Starting a bulk retrain: a batch record, runs written in pipelined chunks, first steps queued."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from worker.queue import StepQueue
from worker.schemas import Batch, Lane, Tenant
from worker.store import RunRequest, Store, new_id

CHUNK = 1000


@dataclass(frozen=True)
class BatchStarted:
    """A batch as accepted: runs created, and tenants whose active run absorbed the request."""

    batch: Batch
    created: int
    coalesced: int


async def start_batch(
    store: Store,
    queue: StepQueue,
    tenants: Sequence[Tenant],
    *,
    reason: str = "bulk",
    batch_id: str | None = None,
    lane: Lane = Lane.BULK,
    concurrency: int = 64,
) -> BatchStarted:
    """Create a batch of runs for ``tenants`` and enqueue each new run's first step."""
    batch = Batch(id=batch_id or new_id(), total=len(tenants), reason=reason, lane=lane)
    await store.create_batch(batch)
    template = RunRequest(tenant_id="*", lane=lane, batch_id=batch.id, reason=reason)
    created = 0
    for start in range(0, len(tenants), CHUNK):
        outcomes = await store.create_runs(tenants[start : start + CHUNK], template)
        new = [o.run_id for o in outcomes if o.created]
        created += len(new)
        for at in range(0, len(new), concurrency):
            await asyncio.gather(*(queue.advance(r, 0) for r in new[at : at + concurrency]))
    if created != batch.total:
        batch = batch.model_copy(update={"total": created})
        await store.create_batch(batch)
    return BatchStarted(batch=batch, created=created, coalesced=len(tenants) - created)
