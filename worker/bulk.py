"""Starting a bulk retrain: a batch record, runs written in pipelined chunks, first steps queued.

A run that can only wait for a BES slot (its training service is known and it has data) is
created waiting, with no first step: thousands of first steps that would only put their run
in the waiting set would hold up arq's queue ahead of the runs that got a slot. One step per
chunk and service wakes the dispatcher; after that, every slot freed is handed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from worker.queue import StepQueue
from worker.schemas import Batch, Lane, Tenant
from worker.settings import TrainingServiceConfig
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
    services: Mapping[str, TrainingServiceConfig] | None = None,
) -> BatchStarted:
    """Create a batch of runs for ``tenants`` and start them.

    With the training ``services`` known, runs that can go straight to waiting for a slot are
    created waiting; the others get a first step, which checks them and fails them clearly.
    """
    batch = Batch(id=batch_id or new_id(), total=len(tenants), reason=reason, lane=lane)
    await store.create_batch(batch)
    template = RunRequest(tenant_id="*", lane=lane, batch_id=batch.id, reason=reason)
    created = 0
    for start in range(0, len(tenants), CHUNK):
        chunk = tenants[start : start + CHUNK]
        waits = [_can_wait(tenant, services) for tenant in chunk]
        outcomes = await store.create_runs(chunk, template, waits)
        new = [o.run_id for o, wait in zip(outcomes, waits, strict=True) if o.created and not wait]
        kicks = {
            tenant.training_service: outcome.run_id
            for tenant, outcome, wait in zip(chunk, outcomes, waits, strict=True)
            if outcome.created and wait
        }
        new += kicks.values()
        created += sum(o.created for o in outcomes)
        for at in range(0, len(new), concurrency):
            await asyncio.gather(*(queue.advance(r, 0) for r in new[at : at + concurrency]))
    if created != batch.total:
        batch = batch.model_copy(update={"total": created})
        await store.create_batch(batch)
    return BatchStarted(batch=batch, created=created, coalesced=len(tenants) - created)


def _can_wait(tenant: Tenant, services: Mapping[str, TrainingServiceConfig] | None) -> bool:
    if services is None or tenant.training_service not in services:
        return False
    service = services[tenant.training_service]
    return tenant.data_path is not None or service.data_parameter is not None
