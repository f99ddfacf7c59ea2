"""Offboarded tenants: their records move to the archive after the grace period."""

from __future__ import annotations

import uuid
from datetime import timedelta

import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, classic_target, onboard
from tests.integration.test_archive import LATER, archiver, blobs, finished_runs
from tests.integration.test_archive_records import deployments
from worker.archive_blobs import ArchiveBlobs
from worker.archive_records import TENANT_PREFIX, decode_lines
from worker.blobs import BlobStore
from worker.redisio import reply
from worker.schemas import Tenant, utcnow
from worker.store import Store

__all__ = ["blobs"]  # the archive container fixture, shared with test_archive


async def test_an_offboarded_tenant_moves_whole_to_the_archive_after_its_grace_period(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """Within the grace period nothing moves; after it, every run, the whole model history
    and the record go to parts, a tombstone keeps the id from being onboarded again, the
    archived runs stay readable by admin, and an erasure then frees the id."""
    store = Store(redis)
    tenant_id = f"left-{uuid.uuid4().hex[:8]}"
    await onboard(api, tenant_id, train=False)
    runs = await finished_runs(store, tenant_id, 2) + await deployments(store, tenant_id, 2)
    assert (await api.delete(f"/v1/tenants/{tenant_id}", headers=ADMIN)).status == 200
    within = await archiver(store, blobs).archive_once(utcnow() + timedelta(days=10))
    assert (within.archived, within.models, within.tenants) == (0, 0, 0)
    after = await archiver(store, blobs).archive_once(utcnow() + LATER)
    assert (after.archived, after.models, after.tenants) == (4, 2, 1)
    assert await store.get_tenant(tenant_id) is None
    assert await store.tenant_run_ids(tenant_id, 0, 10) == []
    assert await store.model_history(tenant_id) == []
    assert list(await reply(redis.hkeys(store.keys.tenant(tenant_id)))) == ["archived"]
    assert await redis.zscore(store.keys.offboarded, tenant_id) is None
    (record,) = await ArchiveBlobs(blobs).paths(f"{TENANT_PREFIX}/{tenant_id}/")
    (line,) = decode_lines(await blobs.download(record))
    kept = Tenant.model_validate_json(line)
    assert (kept.id, kept.deleted) == (tenant_id, True)
    body = {"id": tenant_id, "target": classic_target()}
    again = await api.post("/v1/tenants", json=body, headers=ADMIN)
    assert again.status == 409
    for run in runs:
        shown = await api.get(f"/v1/runs/{run.id}", headers=ADMIN)
        assert shown.status == 200
        assert (await shown.json())["archived"] is True
    erased = await api.post(f"/v1/tenants/{tenant_id}/erase", headers=ADMIN)
    assert erased.status == 200, await erased.text()
    assert (await erased.json())["archive_parts"] == 3  # runs, model history, record
    assert (await api.post("/v1/tenants", json=body, headers=ADMIN)).status == 201
    quiet = await archiver(store, blobs).archive_once(utcnow() + LATER)
    assert quiet.tenants == 0
