"""``GET /v1/runs``: filters by state, tenant, batch and age; tenant keys see their own runs."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.conftest_api import ADMIN, bearer, onboard

ApiTestClient = TestClient[Any, Any]


async def test_filters_and_scope(api: ApiTestClient) -> None:
    """Admins list every tenant's runs; a tenant key only its own; filters narrow the list."""
    acme = await onboard(api, "acme", data_path="data/acme/seed.csv")
    await onboard(api, "beta", data_path="data/beta/seed.csv")
    listed = await (await api.get("/v1/runs", headers=ADMIN)).json()
    assert sorted(run["tenant_id"] for run in listed["items"]) == ["acme", "beta"]
    assert (listed["more"], listed["truncated"]) == (False, False)
    own = await (await api.get("/v1/runs", headers=bearer(acme["api_key"]))).json()
    assert [run["tenant_id"] for run in own["items"]] == ["acme"]
    other = await api.get("/v1/runs?tenant=beta", headers=bearer(acme["api_key"]))
    assert other.status == 404
    queued = await (await api.get("/v1/runs?state=queued,failed&since=1h", headers=ADMIN)).json()
    assert len(queued["items"]) == 2
    none = await (await api.get("/v1/runs?state=failed", headers=ADMIN)).json()
    assert none["items"] == []
    future = await (await api.get("/v1/runs?since=2999-01-01T00:00:00", headers=ADMIN)).json()
    assert future["items"] == []
    one = await (await api.get("/v1/runs?tenant=beta&limit=1", headers=ADMIN)).json()
    assert [run["tenant_id"] for run in one["items"]] == ["beta"]


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ("state=bogus", 422, "state: one or more of queued"),
        ("since=yesterday", 422, "since: a duration like 30m"),
        ("limit=0", 422, "limit: must be in [1, 500]"),
        ("batch=nope", 404, "no batch 'nope'"),
        ("batch=" + "0" * 32, 404, "no batch"),
        ("tenant=Bad!", 404, "no tenant"),
    ],
)
async def test_bad_filters_are_problems(
    api: ApiTestClient, query: str, status: int, detail: str
) -> None:
    """Unknown states, unreadable times, limits out of range and unknown batches are 4xx."""
    response = await api.get(f"/v1/runs?{query}", headers=ADMIN)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert detail in (await response.json())["detail"]
