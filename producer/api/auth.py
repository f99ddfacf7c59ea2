"""Bearer-key authentication, tenant isolation and per-key rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math

from aiohttp import web

from producer.api.problems import Handler, Problem, not_found
from producer.api.state import PRINCIPAL, SETTINGS, STORE, Principal

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/ui", "/ui/"})
# The dashboard's static files; every data call they make carries its own bearer key.
PUBLIC_PREFIXES = ("/ui/",)
MAX_KEY_LENGTH = 256
TENANT_KEY_PREFIX = "rtq_"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="retrainq"'}


def hash_key(key: str) -> str:
    """SHA-256 (hex) of an API key: what is stored and what rate limits count by."""
    return hashlib.sha256(key.encode()).hexdigest()


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=dict(_CHALLENGE))


def bearer_key(header: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; 401 when missing or malformed."""
    if not header:
        raise _unauthorized("send 'Authorization: Bearer <api key>'")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH or " " in key:
        raise _unauthorized("the Authorization header must be 'Bearer <api key>'")
    return key


async def authenticate(request: web.Request, key: str) -> Principal:
    """The principal of ``key``: an admin key from settings or a tenant key; 401 otherwise."""
    digest = hash_key(key)
    for admin_key in request.app[SETTINGS].admin_keys:
        if hmac.compare_digest(admin_key.get_secret_value().encode(), key.encode()):
            return Principal(key_id=digest)
    tenant_id = await request.app[STORE].tenant_for_api_key(digest)
    if tenant_id is None:
        raise _unauthorized("unknown or revoked API key")
    return Principal(key_id=digest, tenant_id=tenant_id)


async def enforce_rate_limit(request: web.Request, principal: Principal) -> None:
    """429 with Retry-After once a key used up its requests in the current window."""
    settings = request.app[SETTINGS]
    count, left = await request.app[STORE].count_request(
        principal.key_id, settings.rate_limit_window_seconds
    )
    if count > settings.rate_limit_requests:
        raise Problem(
            429,
            "Too Many Requests",
            f"more than {settings.rate_limit_requests} requests in "
            f"{settings.rate_limit_window_seconds} s with this key",
            headers={"Retry-After": str(max(1, math.ceil(left)))},
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every route except health, metrics, the OpenAPI document and the UI files."""
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    principal = await authenticate(request, bearer_key(request.headers.get("Authorization")))
    await enforce_rate_limit(request, principal)
    request[PRINCIPAL] = principal
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """The authenticated caller of ``request``."""
    return request[PRINCIPAL]


def require_admin(request: web.Request) -> Principal:
    """The caller, who must hold an admin key (403 for tenant keys)."""
    caller = principal(request)
    if not caller.admin:
        raise Problem(403, "Forbidden", "this route needs an admin key")
    return caller


def check_tenant_access(request: web.Request, tenant_id: str) -> None:
    """404 unless the caller may see ``tenant_id`` (other tenants' resources do not exist)."""
    caller = principal(request)
    if not caller.admin and caller.tenant_id != tenant_id:
        raise not_found("tenant", tenant_id)
