"""Tenant routes of the API against real Redis and Azurite: onboard, list, change, offboard,
upload, models and rollback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from producer.api.settings import ApiSettings
from tests.integration.conftest_api import (
    ADMIN,
    CSV,
    ApiTestClient,
    bearer,
    classic_target,
    make_settings,
    onboard,
)
from worker.blobs import BlobStore
from worker.queue import advance_job_id
from worker.schemas import DeployedModel, Lane, RunState
from worker.store import Store

QUEUE = "retrainq:queue"


async def test_onboarding_returns_key_and_first_interactive_run(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """201 with a working key shown once (stored hashed) and a queued interactive run."""
    created = await onboard(api, "acme", display_name="Acme", data_path="data/acme/seed.csv")
    key = created["api_key"]
    assert created["tenant"]["id"] == "acme"
    assert "api_key_hashes" not in created["tenant"]
    run = created["run"]
    assert run["state"] == "queued"
    assert run["lane"] == "interactive"
    assert await redis.zscore(QUEUE, advance_job_id(run["id"], 0)) is not None
    stored = await Store(redis).get_tenant("acme")
    assert stored is not None
    assert key not in stored.model_dump_json()
    assert len(stored.api_key_hashes) == 1
    own = await api.get("/v1/tenants/acme", headers=bearer(key))
    assert own.status == 200
    assert (await own.json())["display_name"] == "Acme"


async def test_no_first_run_without_data_or_with_train_false(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """No data, or ``train: false``, onboards without a run."""
    assert (await onboard(api, "nodata"))["run"] is None
    quiet = await onboard(api, "quiet", data_path="data/quiet/a.csv", train=False)
    assert quiet["run"] is None
    assert await Store(redis).tenant_run_ids("quiet") == []


async def test_onboarding_an_existing_id_is_409(api: ApiTestClient) -> None:
    """A second onboarding of the same id answers 409 problem+json."""
    await onboard(api, "acme")
    again = await api.post(
        "/v1/tenants", json={"id": "acme", "target": classic_target()}, headers=ADMIN
    )
    assert again.status == 409
    assert again.content_type == "application/problem+json"
    assert "acme" in (await again.json())["detail"]


async def test_list_pages_and_filters_by_kind(api: ApiTestClient) -> None:
    """Pages follow creation order; ``kind`` keeps only that target kind."""
    for i in range(5):
        await onboard(api, f"c{i}")
    await onboard(api, "n0", target={"kind": "new", "template_service": "tmpl"})
    first = await (await api.get("/v1/tenants?limit=4", headers=ADMIN)).json()
    assert [t["id"] for t in first["items"]] == ["c0", "c1", "c2", "c3"]
    assert first["total"] == 6
    assert first["next_offset"] == 4
    rest = await (await api.get("/v1/tenants?limit=4&offset=4", headers=ADMIN)).json()
    assert [t["id"] for t in rest["items"]] == ["c4", "n0"]
    assert rest["next_offset"] is None
    new = await (await api.get("/v1/tenants?kind=new", headers=ADMIN)).json()
    assert [t["id"] for t in new["items"]] == ["n0"]
    bad = await api.get("/v1/tenants?kind=other", headers=ADMIN)
    assert bad.status == 422


async def test_patch_changes_given_fields_only(api: ApiTestClient) -> None:
    """PATCH changes what it names, clears nullable fields with null, rejects null target."""
    await onboard(api, "acme", display_name="Acme", schedule="0 3 * * *")
    changed = await api.patch(
        "/v1/tenants/acme", json={"display_name": "Acme Corp", "schedule": None}, headers=ADMIN
    )
    assert changed.status == 200
    body = await changed.json()
    assert body["display_name"] == "Acme Corp"
    assert body["schedule"] is None
    assert body["target"] == classic_target()
    null_target = await api.patch("/v1/tenants/acme", json={"target": None}, headers=ADMIN)
    assert null_target.status == 422
    unknown = await api.patch("/v1/tenants/acme", json={"colour": "red"}, headers=ADMIN)
    assert unknown.status == 422


async def test_offboarding_revokes_key_and_cancels_active_run(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """DELETE marks the tenant gone, cancels its run, revokes its key, frees nothing else."""
    created = await onboard(api, "acme", data_path="data/acme/seed.csv")
    await onboard(api, "other")
    deleted = await api.delete("/v1/tenants/acme", headers=ADMIN)
    assert deleted.status == 200
    assert (await deleted.json())["cancelled_run_id"] == created["run"]["id"]
    run = await Store(redis).get_run(created["run"]["id"])
    assert run is not None
    assert run.cancel_requested
    assert (await api.get("/v1/tenants/acme", headers=ADMIN)).status == 404
    assert (await api.get("/v1/tenants/acme", headers=bearer(created["api_key"]))).status == 401
    listed = await (await api.get("/v1/tenants", headers=ADMIN)).json()
    assert [t["id"] for t in listed["items"]] == ["other"]


async def test_remove_remote_offboards_and_queues_the_removal(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """``remove_remote=true`` offboards, records the request and queues the worker's removal."""
    await onboard(api, "acme")
    answer = await api.delete("/v1/tenants/acme?remove_remote=true", headers=ADMIN)
    assert answer.status == 200
    assert (await answer.json())["remote_removal"] == "requested"
    assert (await api.get("/v1/tenants/acme", headers=ADMIN)).status == 404
    tenant = await Store(redis).get_tenant("acme")
    assert tenant is not None
    assert tenant.remote_removal == "requested"
    assert await redis.exists("arq:job:offboard:acme")


async def test_upload_stores_blob_and_bumps_data_version(
    api: ApiTestClient, redis: aioredis.Redis, api_settings: ApiSettings
) -> None:
    """Each upload lands in blob storage as the next version and becomes the tenant's data."""
    created = await onboard(api, "acme")
    headers = {**bearer(created["api_key"]), "Content-Type": "text/csv"}
    first = await api.put("/v1/tenants/acme/data", data=CSV, headers=headers)
    assert first.status == 200, await first.text()
    body = await first.json()
    assert body["data_version"] == 1
    assert body["columns"] == ["age", "income", "label"]
    second_csv = CSV + b"50,70000,0\n"
    second = await (await api.put("/v1/tenants/acme/data", data=second_csv, headers=headers)).json()
    assert second["data_version"] == 2
    assert second["data_path"] == "data/acme/v2.csv"
    tenant = await Store(redis).get_tenant("acme")
    assert tenant is not None
    assert (tenant.data_version, tenant.data_path) == (2, "data/acme/v2.csv")
    async with BlobStore.from_config(api_settings.blob, retry_total=0) as blobs:
        assert await blobs.download("data/acme/v2.csv") == second_csv


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a,b\n1,2\n3\n", "line 3 has 1 fields"),
        (b"a,,c\n1,2,3\n", "empty column name"),
        (b"a,a\n1,2\n", "repeats"),
        (b"a,b\n", "no data rows"),
        (b"\xff\xfe\x00a,b\n", "UTF-8"),
    ],
)
async def test_upload_rejects_unusable_csv(
    api: ApiTestClient, content: bytes, message: str
) -> None:
    """A CSV without a clean header or with ragged rows is 422 and stores nothing."""
    await onboard(api, "acme")
    answer = await api.put("/v1/tenants/acme/data", data=content, headers=ADMIN)
    assert answer.status == 422
    assert message in (await answer.json())["detail"]
    tenant = await (await api.get("/v1/tenants/acme", headers=ADMIN)).json()
    assert tenant["data_version"] == 0


async def test_upload_over_limit_is_413(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str
) -> None:
    """An upload past ``max_upload_bytes`` is refused with 413, streamed or announced."""
    settings = make_settings(redis_url, blob_connection_string, max_upload_bytes=2048)
    async with TestClient(TestServer(create_app(settings))) as client:
        await onboard(client, "acme")
        big = b"a,b\n" + b"1,2\n" * 1000
        announced = await client.put("/v1/tenants/acme/data", data=big, headers=ADMIN)
        assert announced.status == 413

        # No Content-Length: the server must count while reading.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"1,2\n" * 10

        streamed = await client.put("/v1/tenants/acme/data", data=chunks(), headers=ADMIN)
        assert streamed.status == 413
        assert streamed.content_type == "application/problem+json"


def _model(run_id: str, seq: int) -> DeployedModel:
    return DeployedModel(
        run_id=run_id,
        seq=seq,
        model_path=f"models/acme/{run_id}.ilearner",
        metrics={"AUC": 0.8 + seq / 100},
        deployed_at=datetime.now(UTC),
    )


async def test_models_and_rollback_to_the_previous_model(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Models shows current and history; rollback queues an interactive run to the previous one."""
    await onboard(api, "acme", train=False)
    no_model = await api.post("/v1/tenants/acme/rollback", headers=ADMIN)
    assert no_model.status == 409
    store = Store(redis)
    await store.record_deployment("acme", _model("a" * 32, 1))
    only_one = await api.post("/v1/tenants/acme/rollback", headers=ADMIN)
    assert only_one.status == 409
    assert "previous" in (await only_one.json())["detail"]
    await store.record_deployment("acme", _model("b" * 32, 2))
    models = await (await api.get("/v1/tenants/acme/models", headers=ADMIN)).json()
    assert models["current"]["run_id"] == "b" * 32
    assert [m["run_id"] for m in models["history"]] == ["b" * 32, "a" * 32]
    answer = await api.post("/v1/tenants/acme/rollback", headers=ADMIN)
    assert answer.status == 202
    run = (await answer.json())["run"]
    assert run["rollback_to"] == "a" * 32
    assert run["lane"] == Lane.INTERACTIVE.value
    assert run["state"] == RunState.QUEUED.value
    busy = await api.post("/v1/tenants/acme/rollback", headers=ADMIN)
    assert busy.status == 409
    assert (await busy.json())["active_run_id"] == run["id"]


async def test_upload_lacking_the_training_service_columns_is_422(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str
) -> None:
    """A CSV without the columns the tenant's training service needs is refused, not stored."""
    service = {"endpoints": [], "columns": ["hr", "temp", "cnt"]}
    settings = make_settings(
        redis_url, blob_connection_string, training_services={"default": service}
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        await onboard(client, "acme")
        bad = await client.put("/v1/tenants/acme/data", data=b"hr,temp\n1,0.2\n", headers=ADMIN)
        assert bad.status == 422
        assert "cnt" in (await bad.json())["detail"]
        good = await client.put(
            "/v1/tenants/acme/data", data=b"hr,temp,cnt,extra\n1,0.2,10,x\n", headers=ADMIN
        )
        assert good.status == 200, await good.text()
        tenant = await (await client.get("/v1/tenants/acme", headers=ADMIN)).json()
        assert tenant["data_version"] == 1
