"""A tenant's runs listed from Redis into the archive: by cursor, marked, isolated."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from producer.cli.main import main
from tests.integration.conftest_api import ADMIN, ADMIN_KEY, ApiTestClient, bearer, onboard
from tests.integration.test_archive import LATER, archiver, blobs, finished_runs
from worker.blobs import BlobStore
from worker.schemas import utcnow
from worker.store import Store

__all__ = ["blobs"]  # the archive container fixture, shared with test_archive


def fresh(name: str) -> str:
    """A tenant id no earlier test archived parts under (the container outlives Redis)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def pages(api: ApiTestClient, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of a tenant's runs, following ``next_cursor``."""
    found = []
    url = f"{path}?limit=2"
    while True:
        response = await api.get(url, headers=headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        found.append(body)
        if body["next_cursor"] is None:
            return found
        url = f"{path}?limit=2&cursor={body['next_cursor']}"


async def test_the_tenant_listing_pages_into_the_archive_newest_first(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """6 runs, 4 archived: 3 pages of 2 hold all 6 once, newest first, the archived ones
    marked, for the tenant's key and for admin."""
    tenant = fresh("acme")
    store = Store(redis)
    acme = await onboard(api, tenant, train=False)
    runs = await finished_runs(store, tenant, 6)
    done = await archiver(store, blobs, keep_runs=2).archive_once(utcnow() + LATER)
    assert done.archived == 4
    live = set(await store.tenant_run_ids(tenant, 0, 10))
    for headers in (ADMIN, bearer(acme["api_key"])):
        found = await pages(api, f"/v1/tenants/{tenant}/runs", headers)
        items = [item for page in found for item in page["items"]]
        assert len(found) == 3
        expected = sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)
        assert [i["id"] for i in items] == [r.id for r in expected]
        assert {i["id"] for i in items if not i["archived"]} == live
        assert sum(i["archived"] for i in items) == 4


async def test_a_pass_between_two_pages_neither_repeats_nor_skips_a_run(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """The first page is read with every run in Redis, the rest after the archiver moved
    most of them: the pages together hold each run exactly once."""
    tenant = fresh("acme")
    store = Store(redis)
    await onboard(api, tenant, train=False)
    runs = await finished_runs(store, tenant, 5)
    first = await (await api.get(f"/v1/tenants/{tenant}/runs?limit=2", headers=ADMIN)).json()
    assert not any(item["archived"] for item in first["items"])
    await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    seen = [item["id"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        url = f"/v1/tenants/{tenant}/runs?limit=2&cursor={cursor}"
        page = await (await api.get(url, headers=ADMIN)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(r.id for r in runs)
    assert len(seen) == len(set(seen))


async def test_another_tenants_key_can_neither_list_nor_read_archived_runs(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """Archived runs answer another tenant's key exactly as if they did not exist."""
    tenant = fresh("acme")
    store = Store(redis)
    await onboard(api, tenant, train=False)
    other_id = fresh("other")
    other = await onboard(api, other_id, train=False)
    runs = await finished_runs(store, tenant, 3)
    await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    archived = [r.id for r in runs if r.id not in await store.tenant_run_ids(tenant, 0, 10)]
    assert archived
    key = bearer(other["api_key"])
    listing = await api.get(f"/v1/tenants/{tenant}/runs", headers=key)
    ghost = await api.get("/v1/tenants/nobody/runs", headers=key)
    assert listing.status == ghost.status == 404
    assert (await listing.json())["title"] == (await ghost.json())["title"]
    filtered = await api.get(f"/v1/runs?tenant={tenant}", headers=key)
    assert filtered.status == 404
    own = await (await api.get("/v1/runs", headers=key)).json()
    assert own["items"] == []
    for run_id in archived:
        assert (await api.get(f"/v1/runs/{run_id}", headers=key)).status == 404
    cursor_of_acme = (
        await (await api.get(f"/v1/tenants/{tenant}/runs?limit=1", headers=ADMIN)).json()
    )["next_cursor"]
    stolen = await api.get(f"/v1/tenants/{other_id}/runs?cursor={cursor_of_acme}", headers=key)
    assert stolen.status == 200
    assert (await stolen.json())["items"] == []


@pytest.mark.parametrize("cursor", ["not-base64!", "WyJ4Il0", "e30", "W251bGwsIDFd"])
async def test_a_cursor_this_listing_did_not_return_is_a_422_problem(
    api: ApiTestClient, cursor: str
) -> None:
    """Garbage, a list of one, an object, wrong types: 422 problem+json."""
    await onboard(api, "acme", train=False)
    response = await api.get(f"/v1/tenants/acme/runs?cursor={cursor}", headers=ADMIN)
    assert response.status == 422
    assert response.content_type == "application/problem+json"


async def test_runs_list_of_a_tenant_shows_archived_runs_with_a_note(
    api: ApiTestClient,
    redis: aioredis.Redis,
    blobs: BlobStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    """``retrainq runs list --tenant`` lists the archived runs too, marked, with a note;
    ``--state`` filters them like live ones."""
    tenant = fresh("acme")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETRAINQ_API_URL", raising=False)
    store = Store(redis)
    await onboard(api, tenant, train=False)
    runs = await finished_runs(store, tenant, 3)
    await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    url = str(api.make_url("/"))
    argv = ["runs", "list", "--tenant", tenant, "--api-url", url, "--api-key", ADMIN_KEY]
    assert await asyncio.to_thread(main, argv) == 0
    captured = capsys.readouterr()
    assert all(run.id in captured.out for run in runs)
    assert captured.out.count("(archived)") == 2
    assert "2 runs are archived" in captured.err
    assert await asyncio.to_thread(main, [*argv, "--state", "succeeded"]) == 0
    assert "(archived)" not in capsys.readouterr().out
