"""``Idempotency-Key`` on the run-creating routes: the same request replays its first answer.

Keys belong to the caller's API key. A reused key with the same method, path and body (as
canonical JSON) gets the first answer again (with ``Idempotent-Replayed: true``); with any
other request it is a 422 of type ``urn:retrainq-problem:idempotency-key-reused``; while the
first request is still being handled, a 409. A first request that fails (4xx/5xx) frees its
key. Records expire ``idempotency_ttl_seconds`` after the first answer.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

from aiohttp import web

from producer.api.problems import Handler, Problem
from producer.api.state import PRINCIPAL, SETTINGS
from worker.idempotency import IdempotencyRecords, IdempotentAnswer, fingerprint

HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REUSED = "urn:retrainq-problem:idempotency-key-reused"
# Routes whose answers hold no secret (onboarding's answer holds the tenant's key: not kept).
ROUTES = frozenset(
    {"/v1/tenants/{tenant_id}/retrains", "/v1/tenants/{tenant_id}/rollback", "/v1/batches"}
)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyRecords)
# Long enough for any one request; a claim a crashed API left behind frees itself after it.
PENDING = timedelta(seconds=60)


def _body_of(raw: bytes) -> object:
    if not raw.strip():
        return {}
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")  # the handler answers 422; the claim is freed
    return parsed


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replay, refuse or record requests that carry an ``Idempotency-Key``."""
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST" or _route(request) not in ROUTES:
        return await handler(request)
    if not KEY_PATTERN.fullmatch(key):
        raise Problem(
            422,
            "Unprocessable Content",
            f"{HEADER}: 1-128 characters of letters, digits and . _ : -",
        )
    caller = request[PRINCIPAL].key_id
    print_ = fingerprint(request.method, request.path, _body_of(await request.read()))
    records = request.app[IDEMPOTENCY]
    earlier = await records.claim(caller, key, print_, PENDING)
    if earlier is not None:
        return _replay(earlier, print_)
    try:
        response = await handler(request)
    except BaseException:
        await records.release(caller, key)
        raise
    if not isinstance(response, web.Response) or not 200 <= response.status < 300:
        await records.release(caller, key)
        return response
    body = response.body if isinstance(response.body, bytes) else b""
    answer = IdempotentAnswer(print_, response.status, body.decode())
    ttl = timedelta(seconds=request.app[SETTINGS].idempotency_ttl_seconds)
    await records.complete(caller, key, answer, ttl)
    return response


def _replay(earlier: IdempotentAnswer, print_: str) -> web.Response:
    if earlier.fingerprint != print_:
        raise Problem(
            422,
            "Idempotency-Key Reused",
            f"{HEADER}: this key was used for a different request (another route or body); "
            "use a new key for a new request",
            type=REUSED,
        )
    if not earlier.status:
        raise Problem(
            409,
            "Conflict",
            f"the first request with this {HEADER} is still being handled; try again shortly",
            headers={"Retry-After": "1"},
        )
    return web.Response(
        status=earlier.status,
        body=earlier.body.encode(),
        content_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )
