"""Bounded input and failure answers: 413, 422, 429 with Retry-After, 404/405 as problems,
and 503 (not a hang, not a 500) when Redis is unreachable or silent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from producer.devtools.processes import free_port
from tests.integration.conftest_api import (
    ADMIN,
    CSV,
    ApiTestClient,
    classic_target,
    make_settings,
    onboard,
)


async def test_json_body_over_limit_is_413(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str
) -> None:
    """A JSON body past ``max_body_bytes`` answers 413 problem+json."""
    settings = make_settings(redis_url, blob_connection_string, max_body_bytes=1024)
    async with TestClient(TestServer(create_app(settings))) as client:
        body = {"id": "acme", "target": classic_target(), "display_name": "x" * 2000}
        answer = await client.post("/v1/tenants", json=body, headers=ADMIN)
        assert answer.status == 413
        assert answer.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"id": "acme", "target": classic_target(), "colour": "red"}, "colour"),
        ({"id": "Acme!", "target": classic_target()}, "id"),
        ({"id": "a" * 64, "target": classic_target()}, "id"),
        ({"id": "acme", "target": classic_target(), "display_name": "x" * 201}, "display_name"),
        ({"id": "acme", "target": {"kind": "other"}}, "target"),
        ({"id": "acme"}, "target"),
        ({"id": "acme", "target": classic_target(), "data_path": "../etc/passwd"}, "data_path"),
        ([1, 2, 3], ""),
    ],
)
async def test_invalid_onboarding_is_422(api: ApiTestClient, body: object, where: str) -> None:
    """Unknown fields, bad ids, long fields and bad paths answer 422 naming the field."""
    answer = await api.post("/v1/tenants", json=body, headers=ADMIN)
    assert answer.status == 422
    problem = await answer.json()
    assert problem["title"] == "Unprocessable Content"
    assert where in problem["detail"]
    assert "Traceback" not in await answer.text()


async def test_invalid_json_and_query_are_422(api: ApiTestClient) -> None:
    """Malformed JSON and out-of-range paging answer 422."""
    as_json = {**ADMIN, "Content-Type": "application/json"}
    assert (await api.post("/v1/tenants", data=b"{nope", headers=as_json)).status == 422
    assert (await api.get("/v1/tenants?limit=0", headers=ADMIN)).status == 422
    assert (await api.get("/v1/tenants?limit=x", headers=ADMIN)).status == 422
    await onboard(api, "acme")
    extra = await api.post("/v1/tenants/acme/retrains", json={"force": True}, headers=ADMIN)
    assert extra.status == 422


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_json_routes_refuse_other_media_types_with_415(
    api: ApiTestClient, content_type: str
) -> None:
    """A JSON body labelled as something else answers 415 and creates nothing."""
    body = json.dumps({"id": "acme", "target": classic_target()}).encode()
    headers = {**ADMIN, "Content-Type": content_type}
    refused = await api.post("/v1/tenants", data=body, headers=headers)
    assert (refused.status, refused.content_type) == (415, "application/problem+json")
    assert "application/json" in (await refused.json())["detail"]
    assert (await api.get("/v1/tenants/acme", headers=ADMIN)).status == 404
    labelled = {**ADMIN, "Content-Type": "application/json; charset=utf-8"}
    assert (await api.post("/v1/tenants", data=body, headers=labelled)).status == 201


async def test_json_body_without_content_type_is_read_as_json(api: ApiTestClient) -> None:
    """No Content-Type at all is taken as JSON (only a wrong label is refused)."""
    body = json.dumps({"id": "acme", "target": classic_target()}).encode()
    unlabelled = await api.post(
        "/v1/tenants", data=body, headers=ADMIN, skip_auto_headers=["Content-Type"]
    )
    assert unlabelled.status == 201, await unlabelled.text()


async def test_uploads_refuse_non_csv_media_types_with_415(api: ApiTestClient) -> None:
    """Training data labelled JSON or multipart answers 415 and stores no data version."""
    await onboard(api, "acme")
    for content_type in ("application/json", "multipart/form-data; boundary=x"):
        headers = {**ADMIN, "Content-Type": content_type}
        refused = await api.put("/v1/tenants/acme/data", data=CSV, headers=headers)
        assert (refused.status, refused.content_type) == (415, "application/problem+json")
    tenant = await (await api.get("/v1/tenants/acme", headers=ADMIN)).json()
    assert tenant["data_version"] == 0
    for content_type in ("text/csv", "text/plain", "application/octet-stream"):
        headers = {**ADMIN, "Content-Type": content_type}
        assert (await api.put("/v1/tenants/acme/data", data=CSV, headers=headers)).status == 200


async def test_unknown_route_and_method_are_problems(api: ApiTestClient) -> None:
    """404 and 405 are problem+json too."""
    missing = await api.get("/v1/nothing", headers=ADMIN)
    assert (missing.status, missing.content_type) == (404, "application/problem+json")
    wrong = await api.put("/v1/tenants", headers=ADMIN)
    assert (wrong.status, wrong.content_type) == (405, "application/problem+json")
    assert "GET" in wrong.headers["Allow"]


async def test_rate_limit_answers_429_with_retry_after(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str
) -> None:
    """Past the per-key limit in a window, requests answer 429 with Retry-After."""
    settings = make_settings(
        redis_url, blob_connection_string, rate_limit_requests=3, rate_limit_window_seconds=60
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        statuses = [(await client.get("/v1/tenants", headers=ADMIN)).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await client.get("/v1/tenants", headers=ADMIN)
        assert limited.status == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.content_type == "application/problem+json"
        assert (await client.get("/healthz")).status == 200


@pytest.fixture
async def silent_redis() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
async def test_unreachable_redis_is_503_quickly(
    blob_connection_string: str, silent_redis: int, kind: str
) -> None:
    """Redis refusing or not answering gives 503 with Retry-After within the timeout."""
    port = free_port() if kind == "refused" else silent_redis
    settings = make_settings(
        f"redis://127.0.0.1:{port}/0", blob_connection_string, redis_timeout_seconds=0.5
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        started = time.monotonic()
        answer = await client.post(
            "/v1/tenants", json={"id": "acme", "target": classic_target()}, headers=ADMIN
        )
        assert answer.status == 503
        assert answer.headers["Retry-After"]
        assert "Redis" in (await answer.json())["detail"]
        assert time.monotonic() - started < 3
        ready = await client.get("/readyz")
        assert ready.status == 503
