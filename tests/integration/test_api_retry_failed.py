"""``POST /v1/batches/{batch_id}/retry-failed`` on the real app and Redis: a new batch of the
tenants whose runs failed (and, when asked, were cancelled), admin only, problems otherwise."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, bearer, onboard
from tests.runs import put_in_state
from worker.run.model import RunState
from worker.store import Store


async def batch_of(api: ApiTestClient, redis: aioredis.Redis, states: dict[str, RunState]) -> str:
    """A batch of one new tenant per entry, each run moved to its state; the batch id."""
    for tenant_id in states:
        await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    answer = await api.post("/v1/batches", json={"tenant_ids": list(states)}, headers=ADMIN)
    assert answer.status == 202, await answer.text()
    batch_id: str = (await answer.json())["batch_id"]
    store = Store(redis)
    for run in await store.get_runs(await store.batch_run_ids(batch_id)):
        if states[run.tenant_id] is not RunState.WAITING_SLOT:
            await put_in_state(store, run, states[run.tenant_id])
    return batch_id


async def retry(api: ApiTestClient, batch_id: str, query: str = "") -> tuple[int, Any]:
    """The status and body of a retry of ``batch_id``."""
    response = await api.post(f"/v1/batches/{batch_id}/retry-failed{query}", headers=ADMIN)
    return response.status, await response.json()


async def tenants_of(redis: aioredis.Redis, batch_id: str) -> list[str]:
    """The tenants of a batch's runs, in batch order."""
    store = Store(redis)
    return [r.tenant_id for r in await store.get_runs(await store.batch_run_ids(batch_id))]


async def test_retry_failed_starts_a_batch_of_the_failed_tenants_only(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Of a batch with a success, two failures, a cancel and a run still waiting, the retry
    retrains the two failed tenants; with include_cancelled the cancelled one too."""
    states = {
        "ok-1": RunState.SUCCEEDED,
        "bad-1": RunState.FAILED,
        "gone-1": RunState.CANCELLED,
        "bad-2": RunState.FAILED,
        "busy-1": RunState.WAITING_SLOT,
    }
    batch_id = await batch_of(api, redis, states)
    status, body = await retry(api, batch_id)
    assert status == 202, body
    assert (body["total"], body["coalesced"], body["not_found"]) == (2, 0, [])
    assert body["batch_id"] != batch_id
    assert await tenants_of(redis, body["batch_id"]) == ["bad-1", "bad-2"]
    progress = await (await api.get(f"/v1/batches/{body['batch_id']}", headers=ADMIN)).json()
    assert progress["reason"] == f"retry of {batch_id}"

    status, again = await retry(api, batch_id, "?include_cancelled=true")
    assert status == 202, again
    # bad-1 and bad-2 are still active in the first retry: their requests coalesce
    assert (again["total"], again["coalesced"]) == (1, 2)
    assert await tenants_of(redis, again["batch_id"]) == ["gone-1"]


async def test_retry_failed_refuses_what_it_cannot_retry(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """409 for a batch without failures, 404 for unknown or malformed batch ids, 403 for a
    tenant key, 422 for a bad flag, all problem+json; none of them creates a batch."""
    batch_id = await batch_of(api, redis, {"fine-1": RunState.SUCCEEDED})
    created = await onboard(api, "other-1", train=False)
    before = await (await api.get("/v1/batches", headers=ADMIN)).json()
    answers = [
        (await retry(api, batch_id), 409),
        (await retry(api, "0" * 32), 404),
        (await retry(api, "not-a-batch"), 404),
        (await retry(api, batch_id, "?include_cancelled=maybe"), 422),
    ]
    tenant = await api.post(
        f"/v1/batches/{batch_id}/retry-failed", headers=bearer(created["api_key"])
    )
    answers.append(((tenant.status, await tenant.json()), 403))
    for (status, body), expected in answers:
        assert status == expected, body
        assert body["status"] == expected
    assert "no failed runs" in answers[0][0][1]["detail"]
    after = await (await api.get("/v1/batches", headers=ADMIN)).json()
    assert after["total"] == before["total"] == 1


async def test_retry_failed_leaves_out_offboarded_tenants(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """A failed tenant offboarded since is named in not_found; when it was the only one, the
    retry is a 409."""
    batch_id = await batch_of(api, redis, {"left-1": RunState.FAILED, "stay-1": RunState.FAILED})
    assert (await api.delete("/v1/tenants/left-1", headers=ADMIN)).status == 200
    status, body = await retry(api, batch_id)
    assert status == 202, body
    assert (body["total"], body["not_found"]) == (1, ["left-1"])
    alone = await batch_of(api, redis, {"solo-1": RunState.FAILED})
    assert (await api.delete("/v1/tenants/solo-1", headers=ADMIN)).status == 200
    status, body = await retry(api, alone)
    assert status == 409
    assert "offboarded" in body["detail"]
