"""Run and batch routes of the API against real Redis: retrain, coalesce, idempotency, cancel,
bulk retrains of up to 10,000 tenants and batch progress."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from tests.integration.conftest_api import ADMIN, CSV, ApiTestClient, bearer, make_settings, onboard
from tests.runs import put_in_state
from worker.queue import advance_job_id
from worker.schemas import ClassicTarget, NewServiceTarget, Run, RunState, Tenant
from worker.store import Store

QUEUE = "retrainq:queue"


async def _end(store: Store, run_id: str, state: RunState) -> Run:
    run = await store.get_run(run_id)
    assert run is not None
    return await put_in_state(store, run, state, due_in=None)


async def test_retrain_creates_run_then_coalesces(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """The first retrain queues a run; a second one returns the active run."""
    created = await onboard(api, "acme", data_path="data/acme/seed.csv", train=False)
    headers = bearer(created["api_key"])
    first = await api.post("/v1/tenants/acme/retrains", json={"reason": "drift"}, headers=headers)
    assert first.status == 202
    body = await first.json()
    assert body["coalesced"] is False
    assert body["run"]["reason"] == "drift"
    assert body["run"]["lane"] == "interactive"
    assert await redis.zscore(QUEUE, advance_job_id(body["run"]["id"], 0)) is not None
    second = await (await api.post("/v1/tenants/acme/retrains", headers=headers)).json()
    assert second["coalesced"] is True
    assert second["run"]["id"] == body["run"]["id"]
    assert second["run"]["rerun_requested"] is False


async def test_retrain_without_training_data_is_409(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str
) -> None:
    """A retrain that could only fail for want of data is refused up front; none is queued."""
    service: dict[str, list[object]] = {"endpoints": []}
    settings = make_settings(
        redis_url, blob_connection_string, training_services={"default": service}
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        await onboard(client, "acme", train=False)
        refused = await client.post("/v1/tenants/acme/retrains", headers=ADMIN)
        assert (refused.status, refused.content_type) == (409, "application/problem+json")
        assert "/v1/tenants/acme/data" in (await refused.json())["detail"]
        assert await Store(redis).tenant_run_ids("acme", 0, 10) == []
        assert (await client.put("/v1/tenants/acme/data", data=CSV, headers=ADMIN)).status == 200
        accepted = await client.post("/v1/tenants/acme/retrains", headers=ADMIN)
        assert accepted.status == 202


async def test_retrain_after_new_data_flags_a_rerun(api: ApiTestClient) -> None:
    """New data during an active run marks that run to run once more."""
    await onboard(api, "acme", data_path="data/acme/seed.csv")
    uploaded = await api.put("/v1/tenants/acme/data", data=CSV, headers=ADMIN)
    assert uploaded.status == 200
    again = await (await api.post("/v1/tenants/acme/retrains", headers=ADMIN)).json()
    assert again["coalesced"] is True
    assert again["run"]["rerun_requested"] is True


async def test_idempotency_key_returns_the_same_run(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """The same Idempotency-Key yields the same run even after it ended; a new key, a new run."""
    await onboard(api, "acme", data_path="data/acme/seed.csv", train=False)
    key = {**ADMIN, "Idempotency-Key": "nightly-2026-01-01"}
    first = await (await api.post("/v1/tenants/acme/retrains", headers=key)).json()
    await _end(Store(redis), first["run"]["id"], RunState.SUCCEEDED)
    replay = await api.post("/v1/tenants/acme/retrains", headers=key)
    assert replay.status == 202
    assert (await replay.json())["run"]["id"] == first["run"]["id"]
    other = {**ADMIN, "Idempotency-Key": "nightly-2026-01-02"}
    fresh = await (await api.post("/v1/tenants/acme/retrains", headers=other)).json()
    assert fresh["run"]["id"] != first["run"]["id"]
    bad = await api.post(
        "/v1/tenants/acme/retrains", headers={**ADMIN, "Idempotency-Key": "has space"}
    )
    assert bad.status == 422


async def test_show_list_and_cancel_runs(api: ApiTestClient, redis: aioredis.Redis) -> None:
    """Runs are listed newest first; DELETE flags cancel (202); ended runs answer 409."""
    await onboard(api, "acme", data_path="data/acme/seed.csv")
    store = Store(redis)
    ids = []
    for _ in range(3):
        run = (await (await api.post("/v1/tenants/acme/retrains", headers=ADMIN)).json())["run"]
        ids.append(run["id"])
        await _end(store, run["id"], RunState.FAILED)
    latest = (await (await api.post("/v1/tenants/acme/retrains", headers=ADMIN)).json())["run"]
    page = await (await api.get("/v1/tenants/acme/runs?limit=2", headers=ADMIN)).json()
    assert [r["id"] for r in page["items"]] == [latest["id"], ids[2]]
    assert page["next_offset"] == 2
    shown = await (await api.get(f"/v1/runs/{latest['id']}", headers=ADMIN)).json()
    assert shown["state"] == "queued"
    cancel = await api.delete(f"/v1/runs/{latest['id']}", headers=ADMIN)
    assert cancel.status == 202
    assert (await cancel.json())["cancel_requested"] is True
    ended = await api.delete(f"/v1/runs/{ids[0]}", headers=ADMIN)
    assert ended.status == 409
    assert (await api.get("/v1/runs/" + "0" * 32, headers=ADMIN)).status == 404
    assert (await api.get("/v1/runs/not-a-run", headers=ADMIN)).status == 404


async def test_batch_of_listed_tenants_and_progress(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """A batch runs in the bulk lane; progress, throughput and ETA follow finished runs."""
    for i in range(4):
        await onboard(api, f"t{i}", data_path=f"data/t{i}/a.csv", train=False)
    answer = await api.post(
        "/v1/batches", json={"tenant_ids": ["t0", "t1", "t2", "t3", "ghost"]}, headers=ADMIN
    )
    assert answer.status == 202
    accepted = await answer.json()
    assert accepted["total"] == 4
    assert accepted["not_found"] == ["ghost"]
    store = Store(redis)
    run_ids = await store.batch_run_ids(accepted["batch_id"])
    runs = await store.get_runs(run_ids)
    assert {r.lane.value for r in runs} == {"bulk"}
    assert {r.batch_id for r in runs} == {accepted["batch_id"]}
    for run in runs:
        assert await redis.zscore(QUEUE, advance_job_id(run.id, 0)) is not None
    url = f"/v1/batches/{accepted['batch_id']}"
    status = await (await api.get(url, headers=ADMIN)).json()
    assert status["counts"]["queued"] == 4
    assert (status["done"], status["progress"], status["eta_seconds"]) == (0, 0.0, None)
    await _end(store, runs[0].id, RunState.SUCCEEDED)
    await asyncio.sleep(0.05)
    await _end(store, runs[1].id, RunState.FAILED)
    status = await (await api.get(url, headers=ADMIN)).json()
    assert status["done"] == 2
    assert status["progress"] == 0.5
    assert status["counts"]["succeeded"] == 1
    assert status["counts"]["failed"] == 1
    assert status["throughput_per_second"] > 0
    assert status["eta_seconds"] > 0


async def test_batch_of_all_tenants_with_kind_filter(api: ApiTestClient) -> None:
    """``all: true`` with ``target_kind`` selects only that kind; active runs are coalesced."""
    await onboard(api, "c1", data_path="data/c1/a.csv")  # has an active onboarding run
    await onboard(api, "c2", data_path="data/c2/a.csv", train=False)
    await onboard(api, "n1", target={"kind": "new", "template_service": "tmpl"}, train=False)
    classic = await (
        await api.post("/v1/batches", json={"all": True, "target_kind": "classic"}, headers=ADMIN)
    ).json()
    assert (classic["total"], classic["coalesced"]) == (1, 1)
    both = await api.post("/v1/batches", json={"all": True, "tenant_ids": ["c1"]}, headers=ADMIN)
    assert both.status == 422
    assert (await api.get("/v1/batches/" + "f" * 32, headers=ADMIN)).status == 404


async def test_ten_thousand_tenants_in_one_request(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """A 10,000-tenant bulk retrain is accepted in one request; every run is queued (how fast
    is B5's figure in docs/BENCHMARKS.md, not this test's)."""
    store = Store(redis)
    ids = [f"tenant-{i:05d}" for i in range(10_000)]
    targets = [
        ClassicTarget(web_service_id="ws", resource_name="m"),
        NewServiceTarget(template_service="tmpl"),
    ]
    for start in range(0, len(ids), 500):
        await asyncio.gather(
            *(
                store.create_tenant(
                    Tenant(id=i, target=targets[n % 2], data_path=f"data/{i}/v1.csv")
                )
                for n, i in enumerate(ids[start : start + 500])
            )
        )
    answer = await api.post("/v1/batches", json={"tenant_ids": ids}, headers=ADMIN)
    assert answer.status == 202, await answer.text()
    accepted = await answer.json()
    assert accepted["total"] == 10_000
    status = await (await api.get(f"/v1/batches/{accepted['batch_id']}", headers=ADMIN)).json()
    assert status["counts"]["queued"] == 10_000
    assert await redis.zcard(QUEUE) == 10_000
    too_many = await api.post("/v1/batches", json={"tenant_ids": [*ids, "one-more"]}, headers=ADMIN)
    assert too_many.status == 422
