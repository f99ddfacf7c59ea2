"""Erasing an offboarded tenant: everything of it leaves Redis and blob storage."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from producer.cli.main import main
from tests.integration.conftest_api import ADMIN, ADMIN_KEY, CSV, ApiTestClient, bearer, onboard
from tests.integration.test_archive import LATER, archiver, blobs, finished_runs
from tests.integration.test_archive_records import deployments
from worker.archive_blobs import ArchiveBlobs
from worker.blobs import BlobStore
from worker.schemas import utcnow
from worker.store import Store

__all__ = ["blobs"]  # the archive container fixture, shared with test_archive
PREFIXES = ("archive/runs/", "archive/models/", "archive/tenants/", "data/", "models/")


async def tenant_with_history(
    api: ApiTestClient, store: Store, blobs: BlobStore
) -> tuple[str, list[str]]:
    """A fresh tenant with uploaded data, a model blob, archived and live runs and a
    model history (what an erasure must remove), and its run ids."""
    tenant_id = f"gone-{uuid.uuid4().hex[:8]}"
    await onboard(api, tenant_id, train=False)
    upload = await api.put(
        f"/v1/tenants/{tenant_id}/data",
        data=CSV,
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert upload.status == 200, await upload.text()
    await blobs.upload(f"models/{tenant_id}/trained.ilearner", b"model")
    runs = await finished_runs(store, tenant_id, 3) + await deployments(store, tenant_id, 2)
    report = await archiver(store, blobs, keep_runs=1, keep_deployed=1).archive_once(
        utcnow() + LATER
    )
    assert report.archived == 4  # all but the deployed run, which is also the newest
    return tenant_id, [run.id for run in runs]


async def leftovers(redis: aioredis.Redis, blobs: BlobStore, tenant_id: str) -> list[str]:
    """Redis keys, index entries and blobs that still name the tenant."""
    found = [key async for key in redis.scan_iter(match=f"*{tenant_id}*")]
    found += [
        f"part {number}"
        async for number, where in redis.hscan_iter("retrainq:archive:parts")
        if where.startswith(f"{tenant_id}/")
    ]
    for prefix in PREFIXES:
        found += await ArchiveBlobs(blobs).paths(f"{prefix}{tenant_id}/")
    return found


async def test_an_erasure_removes_every_record_and_blob_and_says_how_many(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """Onboarded: 409 not_offboarded; a tenant key: 403; after offboarding: 200 with the
    counts, nothing of the tenant left, its archived runs 404 even for admin; again: 404."""
    store = Store(redis)
    tenant_id, run_ids = await tenant_with_history(api, store, blobs)
    other = await onboard(api, f"keep-{uuid.uuid4().hex[:8]}", train=False)
    path = f"/v1/tenants/{tenant_id}/erase"
    onboarded = await api.post(path, headers=ADMIN)
    assert onboarded.status == 409
    assert onboarded.content_type == "application/problem+json"
    assert (await onboarded.json())["code"] == "not_offboarded"
    assert (await api.post(path, headers=bearer(other["api_key"]))).status in (403, 404)
    archived_ids = [
        run_id for run_id in run_ids if await store.ledger.archived_at(run_id) is not None
    ]
    assert len(archived_ids) == 4
    assert (await api.delete(f"/v1/tenants/{tenant_id}", headers=ADMIN)).status == 200
    erased = await api.post(path, headers=ADMIN)
    assert erased.status == 200, await erased.text()
    counts: dict[str, Any] = await erased.json()
    assert counts["tenant_id"] == tenant_id
    assert counts["runs"] == 1
    assert counts["archived_index"] == 4
    assert counts["model_history"] == 1
    assert counts["archive_parts"] >= 2  # runs and the trimmed model history
    assert (counts["data_blobs"], counts["model_blobs"]) == (1, 1)
    assert counts["redis_keys"] >= 1
    assert await leftovers(redis, blobs, tenant_id) == []
    for run_id in archived_ids:
        assert (await api.get(f"/v1/runs/{run_id}", headers=ADMIN)).status == 404
        assert await store.ledger.archived_candidates(run_id) == []
    assert (await api.post(path, headers=ADMIN)).status == 404
    assert await store.get_tenant(other["tenant"]["id"]) is not None


async def test_an_erasure_waits_while_an_archiver_pass_holds_the_lease(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """A pass in progress: 409 archiver_busy with Retry-After, nothing erased."""
    store = Store(redis)
    tenant_id = f"busy-{uuid.uuid4().hex[:8]}"
    await onboard(api, tenant_id, train=False)
    assert (await api.delete(f"/v1/tenants/{tenant_id}", headers=ADMIN)).status == 200
    await redis.set(store.keys.archive_lease, "worker-1", px=60_000)
    busy = await api.post(f"/v1/tenants/{tenant_id}/erase", headers=ADMIN)
    assert busy.status == 409
    assert busy.headers["Retry-After"] == "30"
    assert (await busy.json())["code"] == "archiver_busy"
    assert await store.get_tenant(tenant_id) is not None


async def test_the_cli_erases_only_after_confirmation(
    api: ApiTestClient,
    redis: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    """Without --yes and no answer: exit 2, nothing erased; with --yes: the counts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETRAINQ_API_URL", raising=False)
    tenant_id = f"cli-{uuid.uuid4().hex[:8]}"
    await onboard(api, tenant_id, train=False)
    assert (await api.delete(f"/v1/tenants/{tenant_id}", headers=ADMIN)).status == 200
    argv = ["tenants", "erase", tenant_id, "--api-url", str(api.make_url("/"))]
    argv += ["--api-key", ADMIN_KEY]
    assert await asyncio.to_thread(main, argv) == 2
    assert "not confirmed" in capsys.readouterr().err
    assert await Store(redis).get_tenant(tenant_id) is not None
    assert await asyncio.to_thread(main, [*argv, "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"erased {tenant_id}" in out
    assert "archive parts: 0" in out
    assert await Store(redis).get_tenant(tenant_id) is None
