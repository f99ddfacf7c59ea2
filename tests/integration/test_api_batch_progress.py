"""A batch's truthful progress on the API, against real Redis: its state once every run ended,
throughput and ETA unknown until enough is known, failures grouped by class and shape."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from tests.runs import put_in_state
from worker.run.model import Run, RunState
from worker.store import Store

MISSING = "BES job Failed: BlobNotFound: The blob 'data/{tenant}/a.csv' was not found."
MODULE = "BES job Failed: ModuleExecutionError: Score Model failed: column {tenant} missing"


async def _batch(api: ApiTestClient, redis: aioredis.Redis, prefix: str, n: int) -> list[Run]:
    """A batch of ``n`` new tenants; its runs in creation order."""
    ids = [f"{prefix}{i}" for i in range(n)]
    for tenant_id in ids:
        await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    answer = await api.post("/v1/batches", json={"tenant_ids": ids}, headers=ADMIN)
    assert answer.status == 202, await answer.text()
    store = Store(redis)
    batch_id = (await answer.json())["batch_id"]
    return await store.get_runs(await store.batch_run_ids(batch_id))


async def _status(api: ApiTestClient, batch_id: str | None) -> dict[str, Any]:
    response = await api.get(f"/v1/batches/{batch_id}", headers=ADMIN)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _end_all(redis: aioredis.Redis, runs: list[Run], states: list[RunState]) -> None:
    for run, state in zip(runs, states, strict=True):
        await put_in_state(Store(redis), run, state)


async def test_a_batch_whose_runs_all_failed_reads_failed_not_finished(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Every run failed: ``failed``; one failed among successes: ``finished_with_failures``;
    all succeeded (a gate rejection included): ``succeeded``; cancelled ones: ``cancelled``."""
    cases = {
        "failed": [RunState.FAILED] * 3,
        "finished_with_failures": [RunState.SUCCEEDED, RunState.FAILED, RunState.SUCCEEDED],
        "succeeded": [RunState.SUCCEEDED, RunState.REJECTED, RunState.SUCCEEDED],
        "cancelled": [RunState.CANCELLED, RunState.CANCELLED, RunState.SUCCEEDED],
    }
    for index, (expected, states) in enumerate(cases.items()):
        runs = await _batch(api, redis, f"s{index}-", len(states))
        assert (await _status(api, runs[0].batch_id))["state"] == "running"
        await _end_all(redis, runs, states)
        status = await _status(api, runs[0].batch_id)
        assert (status["state"], status["done"], status["eta_seconds"]) == (expected, 3, 0.0)
    listed = await (await api.get("/v1/batches", headers=ADMIN)).json()
    assert sorted(item["state"] for item in listed["items"]) == sorted(cases)


async def test_throughput_and_eta_are_unknown_until_more_runs_ended_than_are_in_flight(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Nothing ended: unknown. One quick failure while three runs train: still unknown. Three
    ended, one in flight: a throughput since the batch began and an ETA for the other three."""
    runs = await _batch(api, redis, "eta-", 7)
    status = await _status(api, runs[0].batch_id)
    assert (status["throughput_per_second"], status["eta_seconds"]) == (None, None)
    store = Store(redis)
    training = [await put_in_state(store, run, RunState.WAITING_SLOT) for run in runs[:3]]
    training = [await put_in_state(store, run, RunState.SUBMITTING) for run in training]
    training = [await put_in_state(store, run, RunState.TRAINING) for run in training]
    await put_in_state(store, runs[3], RunState.FAILED)
    status = await _status(api, runs[0].batch_id)
    assert status["counts"]["training"] == 3
    assert (status["done"], status["throughput_per_second"], status["eta_seconds"]) == (
        1,
        None,
        None,
    )
    for run in training[:2]:
        await put_in_state(
            store, await put_in_state(store, run, RunState.EVALUATING), RunState.DEPLOYING
        )
    deploying = await store.get_runs([run.id for run in training[:2]])
    await _end_all(redis, deploying, [RunState.SUCCEEDED, RunState.SUCCEEDED])
    status = await _status(api, runs[0].batch_id)
    assert (status["state"], status["done"], status["counts"]["training"]) == ("running", 3, 1)
    assert status["throughput_per_second"] > 0
    assert status["eta_seconds"] == 4 / status["throughput_per_second"]


async def test_failures_are_grouped_by_remote_code_and_message_shape(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Two missing blobs and a module error share the code ``bes_Failed`` but fall in two
    groups; the missing blobs' messages differ only in a path, so they share one shape."""
    runs = await _batch(api, redis, "grp-", 4)
    store = Store(redis)
    for run, template in zip(runs, (MISSING, MISSING, MODULE), strict=False):
        error = template.format(tenant=run.tenant_id)
        await put_in_state(store, run, RunState.FAILED, error=error, error_code="bes_Failed")
    await put_in_state(store, runs[3], RunState.SUCCEEDED)
    page = await (await api.get(f"/v1/batches/{runs[0].batch_id}/runs", headers=ADMIN)).json()
    groups = {
        item["tenant_id"]: (item["failure_class"], item["failure_shape"]) for item in page["items"]
    }
    missing = (
        "bes_Failed/BlobNotFound",
        "BES job Failed: BlobNotFound: The blob <name> was not found.",
    )
    module = (
        "bes_Failed/ModuleExecutionError",
        "BES job Failed: ModuleExecutionError: Score Model failed: column grp-<n> missing",
    )
    assert groups == {"grp-0": missing, "grp-1": missing, "grp-2": module, "grp-3": (None, None)}
