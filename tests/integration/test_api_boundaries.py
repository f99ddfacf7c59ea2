"""Tenant boundaries over the real API: data paths, strict bodies, crons, idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from producer.api.settings import ApiSettings
from tests.integration.conftest_api import (
    ADMIN,
    CSV,
    ApiTestClient,
    bearer,
    make_settings,
    onboard,
)
from worker.keys import Keys
from worker.tenants import TenantRecords


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str) -> ApiSettings:
    """The test settings with one shared prefix and a service whose data is a parameter."""
    return make_settings(
        redis_url,
        blob_connection_string,
        shared_data_prefixes=["shared/public/"],
        training_services={"default": {}, "by-uri": {"data_parameter": "URI"}},
    )


async def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status == status, await answer.text()
    assert answer.content_type == "application/problem+json"
    body: dict[str, Any] = await answer.json()
    return body


async def test_a_tenant_key_cannot_point_at_another_tenant_s_data(api: ApiTestClient) -> None:
    """PATCH with B's path (or a models/ or shared path) is 422 foreign_data_path; own is 200."""
    a = await onboard(api, "alpha", train=False)
    await onboard(api, "beta", train=False, data_path="data/beta/v1.csv")
    own = bearer(a["api_key"])
    for path in ("data/beta/v1.csv", "models/beta/x.eval.csv", "shared/public/x.csv", "x.csv"):
        answer = await api.patch("/v1/tenants/alpha", json={"data_path": path}, headers=own)
        problem = await _problem(answer, 422)
        assert problem["code"] == "foreign_data_path", path
        assert "data_path" in problem["detail"]
    answer = await api.patch(
        "/v1/tenants/alpha", json={"data_path": "data/alpha/x.csv"}, headers=own
    )
    assert answer.status == 200, await answer.text()
    tenant = await (await api.get("/v1/tenants/alpha", headers=own)).json()
    assert tenant["data_path"] == "data/alpha/x.csv"


async def test_admins_may_name_shared_prefixes_but_never_another_tenant_s(
    api: ApiTestClient,
) -> None:
    """Create and patch by an admin: shared prefix accepted, a foreign tenant prefix 422."""
    answer = await api.post(
        "/v1/tenants",
        json={
            "id": "gamma",
            "target": {"kind": "new", "template_service": "t"},
            "data_path": "data/beta/v1.csv",
            "train": False,
        },
        headers=ADMIN,
    )
    assert (await _problem(answer, 422))["code"] == "foreign_data_path"
    await onboard(api, "gamma", train=False, data_path="shared/public/bikes.csv")
    answer = await api.patch(
        "/v1/tenants/gamma", json={"data_path": "data/delta/v1.csv"}, headers=ADMIN
    )
    assert (await _problem(answer, 422))["code"] == "foreign_data_path"


async def test_the_data_url_parameter_is_not_the_tenant_s_to_set(api: ApiTestClient) -> None:
    """A service reading its data from a URL parameter: the tenant may not set that one."""
    answer = await api.post(
        "/v1/tenants",
        json={
            "id": "uri",
            "target": {"kind": "new", "template_service": "t"},
            "training_service": "by-uri",
            "global_parameters": {"URI": "https://acct.blob/data/beta/v1.csv"},
            "train": False,
        },
        headers=ADMIN,
    )
    problem = await _problem(answer, 422)
    assert problem["code"] == "reserved_parameter"
    assert "global_parameters.URI" in problem["detail"]


async def test_a_stored_foreign_path_refuses_the_next_retrain(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """A path stored before checks existed: retrain is 409 with code foreign_data_path."""
    created = await onboard(api, "legacy", train=False, data_path="data/legacy/v1.csv")

    def point_elsewhere(tenant: Any) -> Any:
        tenant.data_path = "data/victim/v1.csv"
        return tenant

    await TenantRecords(redis, Keys()).update_tenant("legacy", point_elsewhere)
    answer = await api.post(
        "/v1/tenants/legacy/retrains", json={}, headers=bearer(created["api_key"])
    )
    problem = await _problem(answer, 409)
    assert problem["code"] == "foreign_data_path"
    assert await redis.keys("retrainq:run:*") == []


async def test_an_upload_lands_under_the_tenant_s_own_prefix(api: ApiTestClient) -> None:
    """The only path an upload writes is data/{tenant}/v{n}.csv."""
    created = await onboard(api, "upl", train=False)
    answer = await api.put("/v1/tenants/upl/data", data=CSV, headers={**bearer(created["api_key"])})
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["data_path"] == "data/upl/v1.csv"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/tenants",
            {"id": "s", "target": {"kind": "new", "template_service": "t"}, "train": "yes"},
        ),
        (
            "/v1/tenants",
            {"id": "s", "target": {"kind": "new", "template_service": "t"}, "train": 1},
        ),
        (
            "/v1/tenants",
            {
                "id": "s",
                "target": {"kind": "new", "template_service": "t"},
                "gate": {"threshold": "0.5"},
            },
        ),
        ("/v1/batches", {"all": "true"}),
        ("/v1/batches", {"all": True, "target_kind": 1}),
    ],
)
async def test_bodies_take_only_json_types(
    api: ApiTestClient, path: str, body: dict[str, Any]
) -> None:
    """A string or number where a boolean or number belongs is 422, naming the field."""
    problem = await _problem(await api.post(path, json=body, headers=ADMIN), 422)
    assert problem["errors"], problem


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *"])
async def test_a_cron_that_never_fires_is_422_everywhere(api: ApiTestClient, cron: str) -> None:
    """Fleet schedule, tenant create and tenant patch: 422 naming the field, never a 500."""
    problem = await _problem(
        await api.put("/v1/schedules/x", json={"cron": cron}, headers=ADMIN), 422
    )
    assert problem["detail"].startswith("cron")
    body = {"id": "c", "target": {"kind": "new", "template_service": "t"}, "schedule": cron}
    problem = await _problem(await api.post("/v1/tenants", json=body, headers=ADMIN), 422)
    assert problem["detail"].startswith("schedule")
    await onboard(api, "c2", train=False)
    answer = await api.patch("/v1/tenants/c2", json={"schedule": cron}, headers=ADMIN)
    assert (await _problem(answer, 422))["detail"].startswith("schedule")


async def test_schedules_firing_too_often_are_422(api: ApiTestClient) -> None:
    """Fleet schedules at most every 5 min by default; tenant schedules every minute."""
    answer = await api.put("/v1/schedules/x", json={"cron": "*/2 * * * *"}, headers=ADMIN)
    assert "at most every 5 min" in (await _problem(answer, 422))["detail"]
    answer = await api.put("/v1/schedules/x", json={"cron": "*/5 * * * *"}, headers=ADMIN)
    assert answer.status == 200, await answer.text()
    await onboard(api, "often", train=False, schedule="* * * * *")


async def test_same_idempotency_key_same_body_replays_the_first_answer(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Same key and body: the first run again; a different body: 422 of the reuse type."""
    created = await onboard(api, "idem", train=False, data_path="data/idem/v1.csv")
    own = {**bearer(created["api_key"]), "Idempotency-Key": "k-1"}
    first = await api.post("/v1/tenants/idem/retrains", json={"reason": "a"}, headers=own)
    assert first.status == 202, await first.text()
    again = await api.post("/v1/tenants/idem/retrains", json={"reason": "a"}, headers=own)
    assert again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["run"]["id"] == (await first.json())["run"]["id"]
    other = await api.post("/v1/tenants/idem/retrains", json={"reason": "b"}, headers=own)
    problem = await _problem(other, 422)
    assert problem["type"] == "urn:retrainq-problem:idempotency-key-reused"
    # Scoped to the caller's key: the admin's k-1 is another record.
    admin = await api.post(
        "/v1/tenants/idem/retrains",
        json={"reason": "b"},
        headers={**ADMIN, "Idempotency-Key": "k-1"},
    )
    assert admin.status == 202, await admin.text()
    (name,) = [k for k in await redis.keys("retrainq:idemreq:*") if k.endswith(":k-1")][:1]
    assert 0 < await redis.ttl(name) <= 24 * 3600


async def test_a_failed_first_request_frees_its_idempotency_key(api: ApiTestClient) -> None:
    """A 409 (no training data) is not kept: the same key works once data exists."""
    created = await onboard(api, "nodata", train=False)
    own = {**bearer(created["api_key"]), "Idempotency-Key": "k-2"}
    assert (await api.post("/v1/tenants/nodata/retrains", headers=own)).status == 409
    await api.put("/v1/tenants/nodata/data", data=CSV, headers=bearer(created["api_key"]))
    answer = await api.post("/v1/tenants/nodata/retrains", headers=own)
    assert answer.status == 202, await answer.text()


async def test_concurrent_requests_with_one_key_create_one_run(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Ten at once: each answers the one run (202) or "still in flight" (409), never two runs."""
    created = await onboard(api, "burst", train=False, data_path="data/burst/v1.csv")
    own = {**bearer(created["api_key"]), "Idempotency-Key": "same"}

    async def post() -> tuple[int, Any]:
        answer = await api.post("/v1/tenants/burst/retrains", json={"reason": "r"}, headers=own)
        return answer.status, await answer.json()

    answers = await asyncio.gather(*(post() for _ in range(10)))
    assert {status for status, _ in answers} <= {202, 409}
    run_ids = {body["run"]["id"] for status, body in answers if status == 202}
    assert len(run_ids) == 1
    assert await redis.zcard("retrainq:tenant:burst:runs") == 1


async def test_a_retrain_cannot_name_data_or_parameters(api: ApiTestClient) -> None:
    """A retrain body takes only a reason: data_path or global_parameters in it are 422."""
    created = await onboard(api, "rt", train=False, data_path="data/rt/v1.csv")
    own = bearer(created["api_key"])
    for extra in ({"data_path": "data/beta/v1.csv"}, {"global_parameters": {"URI": "x"}}):
        answer = await api.post("/v1/tenants/rt/retrains", json=extra, headers=own)
        problem = await _problem(answer, 422)
        assert problem["errors"][0]["type"] == "extra_forbidden", problem
