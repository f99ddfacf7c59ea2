"""The dashboard's JSON routes and static files on the real app (no browser): exact counts from
seeded Redis state, admin-only access, and UI files that are public but never a way around auth."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, bearer, onboard
from tests.runs import put_in_state
from worker.keys import Keys
from worker.schemas import RunState
from worker.store import Store
from worker.views import ACTIVITY_BUCKETS, BUCKET_SECONDS, MIN_ACTIVITY_BUCKETS

KEYS = Keys()


async def finish(redis: aioredis.Redis, run_id: str, state: RunState) -> None:
    """Move a stored run to ``state`` through the store's compare-and-set."""
    store = Store(redis, KEYS)
    run = await store.get_run(run_id)
    assert run is not None
    await put_in_state(store, run, state, due_in=None)


async def runs_of(api: ApiTestClient, *created: dict[str, Any]) -> list[dict[str, Any]]:
    """The current records of the onboarding runs of these onboarded tenants."""
    runs = []
    for body in created:
        response = await api.get(f"/v1/runs/{body['run']['id']}", headers=ADMIN)
        runs.append(await response.json())
    return runs


async def test_fleet_counts_tenants_slots_backlog_and_recent_runs(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Tenants by kind and model state, leased slots, queue backlog and runs by state."""
    a = await onboard(api, "tenant-a", data_path="data/tenant-a/a.csv")
    b = await onboard(api, "tenant-b", data_path="data/tenant-b/b.csv")
    await onboard(api, "tenant-c", train=False)
    await finish(redis, a["run"]["id"], RunState.FAILED)
    now = int(time.time() * 1000)
    await redis.zadd(KEYS.slots("default"), {"r1": now + 60_000, "r2": now - 1})  # r2 expired
    await redis.zadd(KEYS.waiting("default", "bulk"), {"r3": now, "r4": now})
    await redis.zadd("retrainq:queue", {"job-late": now + 600_000})
    await redis.set(KEYS.throttle("default"), "1", px=60_000)

    response = await api.get("/v1/fleet?hours=3", headers=ADMIN)
    assert response.status == 200, await response.text()
    fleet: dict[str, Any] = await response.json()
    assert fleet["tenants"] == {
        "total": 3,
        "scanned": 3,
        "complete": True,  # every tenant was scanned: the counts are exact
        "by_kind": {"classic": 3},
        "by_model_state": {"retraining": 1, "no_model": 2},
    }
    (service,) = fleet["services"]
    assert 59 < service.pop("throttle_seconds_left") <= 60
    assert service == {
        "name": "default",
        "slots_in_use": 1,
        "max_running": None,
        "waiting_interactive": 0,
        "waiting_bulk": 2,
        "throttled": True,
        "endpoints": [],
    }
    # the two onboarding runs' first steps are ready; one job is deferred
    assert fleet["backlog"] == {"ready": 2, "deferred": 1, "waiting_slot": 2}
    assert fleet["runs_by_state"] == {"failed": 1, "queued": 1}
    assert len(fleet["runs_by_hour"]) == 3
    assert fleet["runs_by_hour"][-1]["counts"] == {"failed": 1, "queued": 1}
    # the chart's buckets span the runs just created: the narrowest width that covers them
    # from the oldest to the overview's time in 48 buckets, and at least twelve buckets
    activity = fleet["activity"]
    oldest = min(datetime.fromisoformat(r["created_at"]) for r in await runs_of(api, a, b))
    span = (datetime.fromisoformat(fleet["generated_at"]) - oldest).total_seconds()
    width = next(w for w in BUCKET_SECONDS if span <= w * ACTIVITY_BUCKETS)
    assert activity["bucket_seconds"] == width
    assert len(activity["buckets"]) >= MIN_ACTIVITY_BUCKETS
    totals: dict[str, int] = {}
    for bucket in activity["buckets"]:
        for state, n in bucket["counts"].items():
            totals[state] = totals.get(state, 0) + n
    assert totals == {"failed": 1, "queued": 1}


async def test_batches_and_their_runs_are_listed_for_admins_only(api: ApiTestClient) -> None:
    """Recent batches with progress, a batch's runs with phases; 403 for tenant keys."""
    created = await onboard(api, "tenant-a", data_path="data/tenant-a/a.csv", train=False)
    response = await api.post("/v1/batches", json={"all": True}, headers=ADMIN)
    assert response.status == 202
    batch_id = (await response.json())["batch_id"]

    listing = await (await api.get("/v1/batches", headers=ADMIN)).json()
    assert listing["total"] == 1
    assert [(b["id"], b["total"], b["done"]) for b in listing["items"]] == [(batch_id, 1, 0)]
    runs = await (await api.get(f"/v1/batches/{batch_id}/runs", headers=ADMIN)).json()
    assert runs["total"] == 1
    assert runs["next_offset"] is None
    assert runs["items"][0]["tenant_id"] == "tenant-a"
    assert set(runs["items"][0]["phases"]) == {"queued"}

    tenant = bearer(created["api_key"])
    for path in ("/v1/fleet", "/v1/batches", f"/v1/batches/{batch_id}/runs"):
        assert (await api.get(path, headers=tenant)).status == 403, path
    missing = await api.get(f"/v1/batches/{'0' * 32}/runs", headers=ADMIN)
    assert missing.status == 404


async def test_me_names_the_caller(api: ApiTestClient) -> None:
    """An admin key is an admin; a tenant key names its tenant; no key is 401."""
    created = await onboard(api, "tenant-a", train=False)
    assert await (await api.get("/v1/me", headers=ADMIN)).json() == {
        "admin": True,
        "tenant_id": None,
    }
    mine = await api.get("/v1/me", headers=bearer(created["api_key"]))
    assert await mine.json() == {"admin": False, "tenant_id": "tenant-a"}
    assert (await api.get("/v1/me")).status == 401


async def test_ui_files_are_public_with_a_strict_policy_and_no_way_around_auth(
    api: ApiTestClient,
) -> None:
    """/ui serves the page and its scripts without a key, under a same-origin CSP; paths that
    climb out of /ui do not reach the API unauthenticated."""
    page = await api.get("/ui")
    assert page.status == 200
    assert "app.js" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = await api.get("/ui/app.js")
    assert script.status == 200
    assert "javascript" in script.headers["Content-Type"]
    for sneaky in ("/ui/../v1/tenants", "/ui/%2e%2e/v1/tenants", "/ui/..%2fv1%2ftenants"):
        response = await api.get(sneaky)
        assert response.status in (401, 403, 404), (sneaky, response.status)
        assert "items" not in await response.text()
