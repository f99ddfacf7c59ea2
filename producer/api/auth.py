"""Bearer-key authentication, tenant isolation, per-key and failed-authentication rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math

from aiohttp import web

from producer.api.metrics import API_METRICS
from producer.api.problems import Handler, Problem, not_found
from producer.api.settings import ApiSettings
from producer.api.state import PRINCIPAL, SETTINGS, STORE, Principal
from worker.ratelimits import FailedAuthCounters, FailedAuthLimits

PUBLIC_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/openapi.json", "/ui", "/ui/", "/docs", "/docs/"}
)
# The dashboard's static files; every data call they make carries its own bearer key.
PUBLIC_PREFIXES = ("/ui/", "/docs/")
MAX_KEY_LENGTH = 256
TENANT_KEY_PREFIX = "rtq_"
FAILED_AUTH = web.AppKey("failed_auth", FailedAuthCounters)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="retrainq"'}


def hash_key(key: str) -> str:
    """SHA-256 (hex) of an API key: what is stored and what rate limits count by."""
    return hashlib.sha256(key.encode()).hexdigest()


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=dict(_CHALLENGE))


def _printable_ascii(text: str) -> bool:
    # Header bytes that are not UTF-8 arrive as surrogates; keys are printable ASCII only.
    return text.isascii() and text.isprintable()


def bearer_key(header: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; 401 when missing or malformed."""
    if not header:
        raise _unauthorized("send 'Authorization: Bearer <api key>'")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if (
        scheme.lower() != "bearer"
        or not key
        or len(key) > MAX_KEY_LENGTH
        or " " in key
        or not _printable_ascii(key)
    ):
        raise _unauthorized("the Authorization header must be 'Bearer <api key>' (printable ASCII)")
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


def failed_auth_limits(settings: ApiSettings) -> FailedAuthLimits:
    """The failed-authentication limits of ``settings``."""
    return FailedAuthLimits(
        per_address=settings.failed_auth_per_address,
        per_key_prefix=settings.failed_auth_per_key_prefix,
        window_seconds=settings.failed_auth_window_seconds,
    )


def _too_many_failures(wait: float) -> Problem:
    API_METRICS.auth_limited.inc()
    return Problem(
        429,
        "Too Many Requests",
        "too many failed authentications from this client; wait before trying again",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


async def authenticate_request(request: web.Request) -> Principal:
    """The caller of ``request``; failed attempts count against the client's address.

    A client address over its limit is answered 429 before any key is looked up; a refused
    key also counts against its first characters, so spreading guesses of one key over many
    addresses is limited too. Valid keys are never counted.
    """
    counters = request.app[FAILED_AUTH]
    address = request.remote or "unknown"
    wait = await counters.blocked(address)
    if wait is not None:
        raise _too_many_failures(wait)
    header = request.headers.get("Authorization")
    try:
        return await authenticate(request, bearer_key(header))
    except Problem as exc:
        if exc.status != 401:
            raise
        API_METRICS.auth_failures.inc()
        key = header.partition(" ")[2].strip() if header else None
        wait = await counters.failed(address, key)
        if wait is not None:
            raise _too_many_failures(wait) from None
        raise


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every route except health, the OpenAPI document and the UI files."""
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    principal = await authenticate_request(request)
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
