"""One JSON request to an Azure ML surface: auth header, timeout, bounded body, typed errors."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import aiohttp
import structlog
from pydantic import SecretStr

from worker.azureml.errors import (
    PermanentError,
    error_for_exception,
    error_for_status,
    invalid_response,
    redact_url,
)

MAX_RESPONSE_BYTES = 8 * 1024 * 1024

log = structlog.get_logger()


@dataclass(frozen=True)
class JsonReply:
    """A 2xx answer: its status, headers and decoded JSON body (``None`` when empty)."""

    status: int
    headers: Mapping[str, str]
    body: object


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    # One byte past the cap is enough to know the body is too large.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)


def _context() -> tuple[str | None, str | None]:
    # Steps bind tenant_id/run_id once; errors pick them up without threading ids everywhere.
    bound = structlog.contextvars.get_contextvars()
    tenant, run = bound.get("tenant_id"), bound.get("run_id")
    return (tenant if isinstance(tenant, str) else None, run if isinstance(run, str) else None)


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    token: SecretStr,
    timeout_seconds: float,
    json_body: object = None,
    expect: Collection[int] | None = None,
) -> JsonReply:
    """Send one request and return its JSON answer, or raise an ``AzureMLError``.

    ``expect`` narrows the accepted statuses; by default any 2xx is success.
    """
    tenant_id, run_id = _context()
    headers = {
        "Authorization": f"Bearer {token.get_secret_value()}",
        "Accept": "application/json",
    }
    data: bytes | None = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        async with session.request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            allow_redirects=False,
        ) as response:
            raw = await _read_bounded(response)
            status, reply_headers = response.status, dict(response.headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = error_for_exception(exc, method=method, url=url, tenant_id=tenant_id, run_id=run_id)
        log.debug("azureml.request", method=method, url=error.url, error=error.code)
        raise error from exc
    log.debug(
        "azureml.request",
        method=method,
        url=redact_url(url),
        status=status,
        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
    )
    ok = status in expect if expect is not None else 200 <= status < 300
    if not ok:
        raise error_for_status(
            status,
            raw[:MAX_RESPONSE_BYTES],
            method=method,
            url=url,
            retry_after=reply_headers.get("Retry-After"),
            tenant_id=tenant_id,
            run_id=run_id,
        )
    return JsonReply(status, reply_headers, _decode(raw, method=method, url=url, status=status))


def _decode(raw: bytes, *, method: str, url: str, status: int) -> object:
    tenant_id, run_id = _context()

    def bad(problem: str) -> PermanentError:
        error = invalid_response(problem, method=method, url=url)
        error.status = status
        return error.bind(tenant_id=tenant_id, run_id=run_id)

    if len(raw) > MAX_RESPONSE_BYTES:
        raise bad(f"body larger than {MAX_RESPONSE_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad("body is not JSON") from exc


_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def segment(value: str, what: str) -> str:
    """``value`` checked to be one safe URL path segment (ids and names we put in paths)."""
    if not _SEGMENT.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} is not a valid identifier: {value!r}")
    return value
