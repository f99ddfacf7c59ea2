"""Fixtures for API tests: the real app on a loopback TestServer, real Redis and Azurite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from producer.api.app import create_app
from producer.api.settings import ApiSettings

ADMIN_KEY = "admin-key-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CSV = b"age,income,label\n31,52000,1\n45,61000,0\n29,48000,1\n"
# A test client of the API app.
ApiTestClient = TestClient[web.Request, web.Application]


def bearer(key: str) -> dict[str, str]:
    """An Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def make_settings(redis_url: str, blob_connection_string: str, **overrides: Any) -> ApiSettings:
    """API settings pointing at the test services (no .env, no environment surprises)."""
    values: dict[str, Any] = {
        "redis": {"url": redis_url},
        "blob": {"connection_string": blob_connection_string, "container": "api-tests"},
        "admin_keys": [SecretStr(ADMIN_KEY)],
        "rate_limit_requests": 100_000,
        "failed_auth_per_address": 100_000,
        "failed_auth_per_key_prefix": 100_000,
        "preflight": False,  # no Azure ML behind these tests; tests/integration/test_preflight.py
        **overrides,
    }
    return ApiSettings(_env_file=None, **values)


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str) -> ApiSettings:
    """Settings of the API under test."""
    return make_settings(redis_url, blob_connection_string)


@pytest.fixture
async def api(redis: aioredis.Redis, api_settings: ApiSettings) -> AsyncIterator[ApiTestClient]:
    """A client of the real API app served on loopback (Redis flushed first)."""
    async with TestClient(TestServer(create_app(api_settings))) as client:
        yield client


def classic_target(service: str = "predictive-1") -> dict[str, str]:
    """A classic target body."""
    return {"kind": "classic", "web_service_id": service, "resource_name": "trained-model"}


async def onboard(client: ApiTestClient, tenant_id: str, **fields: Any) -> dict[str, Any]:
    """Onboard a tenant as admin and return the 201 body (tenant, api_key, run)."""
    body = {"id": tenant_id, "target": classic_target(), **fields}
    response = await client.post("/v1/tenants", json=body, headers=ADMIN)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created
