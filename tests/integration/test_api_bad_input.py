"""Bad input never reaches a 500: header bytes, store refusals; failed logins are limited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app, create_metrics_app
from producer.api.problems import problem_middleware
from producer.api.server import ProblemAppRunner
from producer.api.settings import ApiSettings
from tests.integration.conftest_api import (
    ADMIN,
    ADMIN_KEY,
    ApiTestClient,
    bearer,
    make_settings,
    onboard,
)
from tests.security.support import clear_of_window_edge
from worker.store import StaleRecord, StoreError, TenantExists, TenantNotFound


async def raw_request(port: int, head: bytes) -> tuple[int, str, bytes]:
    """Send ``head`` (request line and headers, no body) as bytes; status, type and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"Connection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    headers, _, body = answer.partition(b"\r\n\r\n")
    lines = headers.decode("latin-1").split("\r\n")
    content_type = next(
        (
            line.split(":", 1)[1].strip()
            for line in lines
            if line.lower().startswith("content-type")
        ),
        "",
    )
    return int(lines[0].split()[1]), content_type, body


def _port(api: ApiTestClient) -> int:
    port = api.server.port
    assert port is not None
    return port


async def test_a_key_that_is_not_utf8_is_401_not_500(api: ApiTestClient) -> None:
    """``Bearer rtq_\\xe9\\xe8\\xff``: a 401 problem, the key not echoed."""
    status, kind, body = await raw_request(
        _port(api), b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer rtq_\xe9\xe8\xff\r\n"
    )
    assert (status, kind) == (401, "application/problem+json"), body
    assert b"rtq_" not in body


class ProblemTestServer(TestServer):
    """A TestServer whose runner is the API's own (parser errors as problem documents)."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return ProblemAppRunner(self.app, **kwargs)


@pytest.fixture
async def served(api_settings: ApiSettings, redis: Any) -> AsyncIterator[ApiTestClient]:
    """The API app behind the runner ``retrainq-api`` serves it with."""
    async with TestClient(ProblemTestServer(create_app(api_settings))) as client:
        yield client


@pytest.mark.parametrize(
    "value", [b"SECRET\xff\xfe", b"SECRET\x7fx", b"SECRET\x00x", b"SECRET\x01", b"\x1bSECRET"]
)
async def test_headers_with_bad_bytes_are_400_problems_naming_no_value(
    served: ApiTestClient, value: bytes
) -> None:
    """Non-UTF-8 or control bytes in a header: a 400 problem; the value is never echoed.

    Bytes the HTTP parser refuses (NUL, DEL, other controls) are answered by the request
    handler, before the app; the rest by the header middleware, which names the header.
    """
    status, kind, body = await raw_request(
        _port(served),
        b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Trace: " + value + b"\r\n"
        b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n",
    )
    assert (status, kind) == (400, "application/problem+json"), body
    problem = json.loads(body)
    assert problem["status"] == 400
    assert b"SECRET" not in body
    assert ADMIN_KEY.encode() not in body
    if value == b"SECRET\xff\xfe":
        assert "X-Trace" in problem["detail"]


async def test_a_nul_in_the_key_header_never_echoes_the_key(served: ApiTestClient) -> None:
    """The parser's own error text quotes the header line; the answer here does not."""
    status, kind, body = await raw_request(
        _port(served),
        b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + ADMIN_KEY.encode()
        + b"\x00\r\n",
    )
    assert (status, kind) == (400, "application/problem+json"), body
    assert ADMIN_KEY.encode() not in body


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TenantNotFound("acme"), 404),
        (TenantExists("acme"), 409),
        (StaleRecord("tenant acme kept changing"), 409),
        (StoreError("refused"), 409),
    ],
)
async def test_store_refusals_are_4xx_problems(error: StoreError, status: int) -> None:
    """The problem middleware maps every store error to a 4xx, never a 500."""

    async def fail(_request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/", fail)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/")
        assert answer.status == status
        assert answer.content_type == "application/problem+json"


async def test_an_oserror_below_the_api_is_not_called_redis() -> None:
    """A socket error of another client is a 503 that does not blame Redis."""

    async def fail(_request: web.Request) -> web.Response:
        raise ConnectionResetError("peer reset")

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/", fail)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/")
        assert answer.status == 503
        assert "Redis" not in (await answer.json())["detail"]


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str) -> ApiSettings:
    """Failed logins: 5 per address and 8 per key prefix in an hour."""
    return make_settings(
        redis_url,
        blob_connection_string,
        failed_auth_per_address=5,
        failed_auth_per_key_prefix=8,
        failed_auth_window_seconds=3600,
    )


async def _from(address: str, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as answer,
    ):
        return answer.status, answer.headers.get("Retry-After")


async def test_wrong_keys_are_limited_per_address_without_slowing_others(
    api: ApiTestClient,
) -> None:
    """5 times 401 then 429 + Retry-After from one address; valid keys elsewhere still 200."""
    created = await onboard(api, "fine", train=False)
    url = str(api.make_url("/v1/me"))
    await clear_of_window_edge(3600, 30)
    seen = [await _from("127.0.0.2", url, bearer(f"wrong-{i}")) for i in range(8)]
    assert [s for s, _ in seen] == [401] * 5 + [429] * 3
    assert all(int(wait) >= 1 for _, wait in seen[5:])
    # The blocked address is refused before its key is looked at, even a valid one...
    assert (await _from("127.0.0.2", url, bearer(created["api_key"])))[0] == 429
    # ...while other callers' valid keys are not slowed at all.
    assert (await _from("127.0.0.3", url, bearer(created["api_key"])))[0] == 200
    assert (await _from("127.0.0.3", url, ADMIN))[0] == 200


async def test_guesses_of_one_key_prefix_are_limited_across_addresses(
    api: ApiTestClient,
) -> None:
    """Wrong keys sharing their first 8 characters: 429 past 8, whatever the address."""
    url = str(api.make_url("/v1/me"))
    await clear_of_window_edge(3600, 30)
    statuses = [
        (await _from(f"127.0.1.{i}", url, bearer(f"rtq_AAAA{i:040d}")))[0] for i in range(10)
    ]
    assert statuses == [401] * 8 + [429] * 2


async def test_failed_auth_limits_and_counts_show_in_metrics(
    api: ApiTestClient, api_settings: ApiSettings
) -> None:
    """The limits and the 401/429 counters are on the metrics app, not the API port."""
    assert (await api.get("/metrics")).status == 401
    async with TestClient(TestServer(create_metrics_app())) as metrics:
        text = await (await metrics.get("/metrics")).text()
    assert 'retrainq_api_failed_auth_limit{limit="per_address"} 5.0' in text
    assert "retrainq_api_auth_failures_total" in text
    assert "retrainq_api_auth_limited_total" in text
    assert create_app(api_settings)  # building the app again keeps the gauges (no clash)
