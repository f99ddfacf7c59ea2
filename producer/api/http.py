"""Small request/response helpers shared by the route modules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel

from producer.api.auth import check_tenant_access, principal
from producer.api.problems import Handler, Problem, not_found
from producer.api.state import SETTINGS, STORE
from producer.schemas import RUN_ID_PATTERN
from worker.schemas import TENANT_ID_PATTERN, Run, Tenant

M = TypeVar("M", bound=BaseModel)

_TENANT_ID = re.compile(TENANT_ID_PATTERN)
_RUN_ID = re.compile(RUN_ID_PATTERN)


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """A JSON response of a pydantic model."""
    return web.Response(
        status=status, body=model.model_dump_json().encode(), content_type="application/json"
    )


def require_media_type(request: web.Request, accepted: Callable[[str], bool], wanted: str) -> None:
    """415 when the request names a Content-Type ``accepted`` refuses; none given is accepted."""
    if hdrs.CONTENT_TYPE not in request.headers:
        return
    if not accepted(request.content_type):
        raise Problem(
            415,
            "Unsupported Media Type",
            f"Content-Type {request.content_type!r}: send {wanted}",
        )


def is_json(media_type: str) -> bool:
    """``application/json`` or a ``+json`` type."""
    return media_type == "application/json" or media_type.endswith("+json")


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body as ``model``: 413 when too large, 415 when not JSON, 422 when invalid."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Content Too Large", f"the JSON body may hold at most {limit} bytes")
    raw = await request.read()  # aiohttp enforces client_max_size while reading
    if not raw.strip():
        if optional:
            return model()
        raise Problem(422, "Unprocessable Content", "body: a JSON object is required")
    require_media_type(request, is_json, "application/json")
    # Strict: a boolean is true or false, an integer is a JSON integer ("yes", "1" are 422).
    return model.model_validate_json(raw, strict=True)


def _printable(value: str) -> bool:
    # Bytes that are not UTF-8 arrive as lone surrogates; tabs are allowed, other controls not.
    return all(c == "\t" or c.isprintable() for c in value)


@web.middleware
async def header_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for a header whose value holds control bytes or bytes that are not UTF-8.

    The answer names the header, never its value. ``Authorization`` is left to the auth
    middleware: a key that is not printable ASCII is a 401 there (and a failed login).
    """
    for name, value in request.headers.items():
        if name.lower() == "authorization":
            continue
        if not (_printable(name) and _printable(value)):
            shown = name if _printable(name) and len(name) <= 64 else "(unprintable name)"
            raise Problem(
                400,
                "Bad Request",
                f"header {shown}: holds control characters or bytes that are not UTF-8",
            )
    return await handler(request)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]`` (422 otherwise)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, "Unprocessable Content", f"{name}: not an integer") from None
    if not low <= value <= high:
        raise Problem(422, "Unprocessable Content", f"{name}: must be in [{low}, {high}]")
    return value


def query_flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``)."""
    raw = request.query.get(name, "true" if default else "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise Problem(422, "Unprocessable Content", f"{name}: must be true or false")
    return raw in ("true", "1")


def tenant_id_param(request: web.Request) -> str:
    """The ``{tenant_id}`` of the path; ids outside the charset cannot exist (404)."""
    tenant_id = request.match_info["tenant_id"]
    if not _TENANT_ID.fullmatch(tenant_id):
        raise not_found("tenant", tenant_id[:80])
    check_tenant_access(request, tenant_id)
    return tenant_id


async def visible_tenant(request: web.Request) -> Tenant:
    """The tenant of the path, if it exists, is not offboarded and the caller may see it."""
    tenant_id = tenant_id_param(request)
    tenant = await request.app[STORE].get_tenant(tenant_id)
    if tenant is None or tenant.deleted:
        raise not_found("tenant", tenant_id)
    return tenant


async def visible_run(request: web.Request) -> Run:
    """The run of the path, if it exists and belongs to a tenant the caller may see."""
    run_id = request.match_info["run_id"]
    if not _RUN_ID.fullmatch(run_id):
        raise not_found("run", run_id[:80])
    run = await request.app[STORE].get_run(run_id)
    caller = principal(request)
    if run is None or not (caller.admin or caller.tenant_id == run.tenant_id):
        raise not_found("run", run_id)
    return run
