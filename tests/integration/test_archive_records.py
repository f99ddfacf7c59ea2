"""Batches archived as summaries, model history trimmed to K (real Redis and Azurite)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from tests.integration.test_archive import LATER, archiver, blobs, new_tenant
from tests.runs import put_in_state
from worker.archive_records import BatchSummary, batch_part, decode_lines
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.run.archive_ledger import ArchiveLedger
from worker.run.model import Run, RunState
from worker.schemas import Batch, DeployedModel, utcnow
from worker.store import RunRequest, Store, new_id

__all__ = ["blobs"]  # the archive container fixture, shared with test_archive


async def batch_of(store: Store, tenant_ids: list[str], end: RunState | None) -> Batch:
    """A batch with one run per tenant, each ended in ``end`` (None: left queued)."""
    batch = Batch(id=new_id(), total=len(tenant_ids))
    await store.create_batch(batch)
    for tenant_id in tenant_ids:
        created = await store.create_run(RunRequest(tenant_id=tenant_id, batch_id=batch.id))
        run = await store.get_run(created.run_id)
        assert run is not None
        if end is not None:
            await put_in_state(store, run, end)
    return batch


async def test_finished_batches_past_keep_days_leave_redis_as_one_summary_each(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """A batch whose runs all ended goes to a summary part (counts by state) and leaves
    Redis (record, run list, index entry); GET /v1/batches/{id} still answers, archived:
    true. A batch with a run still queued stays, and nothing young is archived."""
    store = Store(redis)
    for tenant_id in ("t1", "t2", "t3"):
        await onboard(api, tenant_id)
    done = await batch_of(store, ["t1", "t2"], RunState.FAILED)
    running = await batch_of(store, ["t3"], None)
    young = await archiver(store, blobs).archive_once(utcnow())
    assert young.batches == 0
    report = await archiver(store, blobs).archive_once(utcnow() + LATER)
    assert report.batches == 1
    assert await store.get_batch(done.id) is None
    assert await store.batch_run_ids(done.id) == []
    assert await redis.zscore(store.keys.batches, done.id) is None
    assert await store.get_batch(running.id) is not None
    where = await ArchiveLedger(redis, store.keys).archived_batch_at(done.id)
    assert where is not None
    (line,) = decode_lines(await blobs.download(batch_part(where)))
    summary = BatchSummary.model_validate_json(line)
    assert (summary.id, summary.total, summary.counts) == (done.id, 2, {"failed": 2})
    shown = await api.get(f"/v1/batches/{done.id}", headers=ADMIN)
    assert shown.status == 200, await shown.text()
    body = await shown.json()
    assert (body["archived"], body["state"], body["done"]) == (True, "failed", 2)
    live = await (await api.get(f"/v1/batches/{running.id}", headers=ADMIN)).json()
    assert live["archived"] is False
    again = await archiver(store, blobs).archive_once(utcnow() + LATER)
    assert again.batches == 0


async def deployments(store: Store, tenant_id: str, count: int) -> list[Run]:
    """``count`` succeeded runs of the tenant, each deployed in turn."""
    runs = []
    for _ in range(count):
        created = await store.create_run(RunRequest(tenant_id=tenant_id))
        run = await store.get_run(created.run_id)
        assert run is not None
        run = await put_in_state(store, run, RunState.SUCCEEDED)
        model = DeployedModel(
            run_id=run.id, seq=run.seq, model_path=f"models/{run.id}", deployed_at=utcnow()
        )
        assert await store.record_deployment(tenant_id, model)
        runs.append(run)
    return runs


async def test_model_history_past_keep_deployed_is_archived_and_rollback_still_works(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """8 deployments, keep_deployed=3, keep_runs=1: the 5 oldest history entries move to a
    part, the newest 3 stay with their runs, and a rollback to the previous model starts."""
    store = Store(redis)
    await onboard(api, "acme", train=False)
    runs = await deployments(store, "acme", 8)
    report = await archiver(store, blobs, keep_runs=1, keep_deployed=3).archive_once(
        utcnow() + LATER
    )
    assert report.models == 5
    history = await store.model_history("acme")
    assert [m.run_id for m in history] == [r.id for r in reversed(runs[-3:])]
    (part,) = [p for p in report.parts if p.startswith("archive/models/acme/")]
    trimmed = [
        DeployedModel.model_validate_json(x) for x in decode_lines(await blobs.download(part))
    ]
    assert [m.run_id for m in trimmed] == [r.id for r in reversed(runs[:5])]
    for run in runs[-3:]:
        assert await store.get_run(run.id) is not None
    rollback = await api.post("/v1/tenants/acme/rollback", headers=ADMIN)
    assert rollback.status == 202, await rollback.text()
    assert (await rollback.json())["run"]["rollback_to"] == runs[-2].id
    again = await archiver(store, blobs, keep_runs=1, keep_deployed=3).archive_once(
        utcnow() + LATER
    )
    assert again.models == 0


@pytest.mark.parametrize("keep", [1, 4])
async def test_a_tenants_own_keep_deployed_bounds_its_history(
    redis: aioredis.Redis, blobs: BlobStore, keep: int
) -> None:
    """The tenant's retention keep_deployed, not the global one, sets how much stays."""
    from tests.integration.test_archive_retention import give_retention
    from worker.schemas import Retention

    store = Store(redis, Keys(f"hist{keep}"))
    await new_tenant(store, "acme")
    await deployments(store, "acme", 6)
    await give_retention(store, "acme", Retention(keep_deployed=keep))
    await archiver(store, blobs, keep_deployed=2).archive_once(utcnow() + LATER)
    assert len(await store.model_history("acme")) == keep
