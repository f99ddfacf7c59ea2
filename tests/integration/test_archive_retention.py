"""Per-tenant retention: set through the tenant API, honoured by the archiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from tests.integration.conftest_api import ADMIN, ApiTestClient, bearer, onboard
from tests.integration.test_archive import LATER, archiver, finished_runs, new_tenant
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.schemas import Retention, Tenant, utcnow
from worker.store import Store


@pytest.fixture
async def blobs(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    """The container the API tests use."""
    async with BlobStore(SecretStr(blob_connection_string), "api-tests") as store:
        await store.ensure_container()
        yield store


async def give_retention(store: Store, tenant_id: str, retention: Retention) -> None:
    """Set the tenant's own retention."""

    def own(tenant: Tenant) -> Tenant:
        return tenant.model_copy(update={"retention": retention})

    await store.update_tenant(tenant_id, own)


async def test_a_tenants_own_keep_runs_wins_over_the_global_one(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """Global keep_runs=1; acme keeps 3 of its 5 runs, other (no override) keeps 1 of 5."""
    store = Store(redis, Keys("ret1"))
    for tenant_id in ("acme", "other"):
        await new_tenant(store, tenant_id)
        await finished_runs(store, tenant_id, 5)
    await give_retention(store, "acme", Retention(keep_runs=3))
    done = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    assert done.archived == 2 + 4
    assert len(await store.tenant_run_ids("acme", 0, 10)) == 3
    assert len(await store.tenant_run_ids("other", 0, 10)) == 1


async def test_a_tenants_keep_days_keeps_its_runs_past_the_global_window(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """keep_days=365 on the tenant: at 40 days nothing of it is archived."""
    store = Store(redis, Keys("ret2"))
    await new_tenant(store, "acme")
    await finished_runs(store, "acme", 3)
    await give_retention(store, "acme", Retention(keep_days=365))
    done = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    assert done.archived == 0


async def test_retention_is_set_by_admin_patch_validated_and_cleared_by_null(
    api: ApiTestClient,
) -> None:
    """Admin PATCH sets and shows it; out of range is a 422 problem; a tenant key is 403;
    null goes back to the global settings; onboarding may set it too."""
    acme = await onboard(api, "acme")
    path = "/v1/tenants/acme"
    changed = await api.patch(path, json={"retention": {"keep_runs": 10}}, headers=ADMIN)
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["retention"] == {
        "keep_runs": 10,
        "keep_days": None,
        "keep_deployed": None,
    }
    bad = await api.patch(path, json={"retention": {"keep_runs": 0}}, headers=ADMIN)
    assert bad.status == 422
    assert bad.content_type == "application/problem+json"
    assert "keep_runs" in (await bad.json())["detail"]
    unknown = await api.patch(path, json={"retention": {"keep": 3}}, headers=ADMIN)
    assert unknown.status == 422
    own_key = bearer(acme["api_key"])
    refused = await api.patch(path, json={"retention": {"keep_days": 1}}, headers=own_key)
    assert refused.status == 403
    assert refused.content_type == "application/problem+json"
    shown = await (await api.get(path, headers=own_key)).json()
    assert shown["retention"]["keep_runs"] == 10
    cleared = await api.patch(path, json={"retention": None}, headers=ADMIN)
    assert (await cleared.json())["retention"] is None
    other = await onboard(api, "other", retention={"keep_days": 90})
    assert other["tenant"]["retention"]["keep_days"] == 90


async def test_runs_past_retention_wait_for_a_part_of_min_part_runs(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """With min_part_runs=4, 3 runs past retention stay; at 4 they move together."""
    store = Store(redis, Keys("ret3"))
    await new_tenant(store, "acme")
    await finished_runs(store, "acme", 4)
    waiting = await archiver(store, blobs, keep_runs=1, min_part_runs=4).archive_once(
        utcnow() + LATER
    )
    assert waiting.archived == 0
    await finished_runs(store, "acme", 1)
    moved = await archiver(store, blobs, keep_runs=1, min_part_runs=4).archive_once(
        utcnow() + LATER
    )
    assert (moved.archived, len(moved.parts)) == (4, 1)
