"""Authentication and tenant isolation: a tenant key sees only its tenant (others are 404),
admin routes are 403 to tenant keys, bad credentials are 401 with a challenge."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest_api import (
    ADMIN,
    CSV,
    ApiTestClient,
    bearer,
    classic_target,
    onboard,
)
from worker.store import Store

# Every route of tenant "victim" (run and batch ids are filled in by the test).
TENANT_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/tenants/victim", None),
    ("PATCH", "/v1/tenants/victim", {"display_name": "pwned"}),
    ("DELETE", "/v1/tenants/victim", None),
    ("PUT", "/v1/tenants/victim/data", CSV),
    ("POST", "/v1/tenants/victim/retrains", None),
    ("GET", "/v1/tenants/victim/runs", None),
    ("GET", "/v1/tenants/victim/models", None),
    ("POST", "/v1/tenants/victim/rollback", None),
    ("GET", "/v1/runs/{run}", None),
    ("DELETE", "/v1/runs/{run}", None),
]
ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/tenants", None),
    ("POST", "/v1/tenants", {"id": "new-one", "target": classic_target()}),
    ("POST", "/v1/batches", {"all": True}),
    ("GET", "/v1/batches/{batch}", None),
]


async def _call(
    api: ApiTestClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, str, dict[str, Any]]:
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    async with api.request(method, path, **kwargs) as response:
        return response.status, response.content_type, await response.json()


@pytest.fixture
async def two_tenants(api: ApiTestClient) -> dict[str, str]:
    """Tenants ``victim`` (with a queued run and a batch) and ``intruder``; ids and keys."""
    victim = await onboard(api, "victim", data_path="data/victim/a.csv")
    intruder = await onboard(api, "intruder")
    batch = await (
        await api.post("/v1/batches", json={"tenant_ids": ["intruder"]}, headers=ADMIN)
    ).json()
    return {
        "run": victim["run"]["id"],
        "batch": batch["batch_id"],
        "victim_key": victim["api_key"],
        "intruder_key": intruder["api_key"],
    }


@pytest.mark.parametrize(("method", "path", "body"), TENANT_ROUTES)
async def test_other_tenants_resources_are_404(
    api: ApiTestClient,
    redis: aioredis.Redis,
    two_tenants: dict[str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    """A tenant key on any route of another tenant answers 404 and changes nothing."""
    url = path.format(**two_tenants)
    status, content_type, problem = await _call(
        api, method, url, body, bearer(two_tenants["intruder_key"])
    )
    assert status == 404
    assert content_type == "application/problem+json"
    assert problem["status"] == 404
    store = Store(redis)
    victim = await store.get_tenant("victim")
    assert victim is not None
    assert (victim.deleted, victim.display_name, victim.data_version) == (False, "", 0)
    assert await store.tenant_run_ids("victim") == [two_tenants["run"]]
    run = await store.get_run(two_tenants["run"])
    assert run is not None
    assert not run.cancel_requested


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_are_403_to_tenant_keys(
    api: ApiTestClient, two_tenants: dict[str, str], method: str, path: str, body: Any
) -> None:
    """Listing, onboarding and batches need an admin key: 403 for a tenant key."""
    status, _, problem = await _call(
        api, method, path.format(**two_tenants), body, bearer(two_tenants["victim_key"])
    )
    assert status == 403
    assert "admin" in problem["detail"]


async def test_own_tenant_routes_work_with_a_tenant_key(
    api: ApiTestClient, two_tenants: dict[str, str]
) -> None:
    """A tenant key reads and acts on its own tenant and runs; offboarding itself is 403."""
    own = bearer(two_tenants["victim_key"])
    assert (await api.get("/v1/tenants/victim", headers=own)).status == 200
    assert (await api.get(f"/v1/runs/{two_tenants['run']}", headers=own)).status == 200
    assert (await api.post("/v1/tenants/victim/retrains", headers=own)).status == 202
    assert (await api.put("/v1/tenants/victim/data", data=CSV, headers=own)).status == 200
    assert (await api.delete("/v1/tenants/victim", headers=own)).status == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer two words"},
        {"Authorization": "Bearer rtq_not-a-real-key"},
        {"Authorization": "Bearer " + "x" * 300},
    ],
)
async def test_bad_credentials_are_401_with_challenge(
    api: ApiTestClient, headers: dict[str, str]
) -> None:
    """Missing, malformed or unknown keys answer 401 with WWW-Authenticate."""
    answer = await api.get("/v1/tenants", headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.content_type == "application/problem+json"


async def test_public_routes_need_no_key(api: ApiTestClient) -> None:
    """Health, readiness and the OpenAPI document are open (metrics have their own port)."""
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await api.get(path)).status == 200, path
