"""``POST /v1/tenants/{tenant_id}/erase``: erase an offboarded tenant for a deletion request."""

from __future__ import annotations

from aiohttp import web

from producer.api.auth import require_admin
from producer.api.http import json_response, tenant_id_param
from producer.api.problems import Problem, not_found
from producer.api.state import BLOBS, STORE
from worker.erase import ArchiverBusy, NotOffboarded, erasable, erase_tenant

RETRY_AFTER_SECONDS = 30


async def erase(request: web.Request) -> web.Response:
    """Delete the tenant's records in Redis, its archive parts and its data and model blobs;
    answers what was removed. 409 while it is onboarded or while an archiver pass runs."""
    require_admin(request)
    tenant_id = tenant_id_param(request)
    store = request.app[STORE]
    try:
        if not await erasable(store, tenant_id):
            raise not_found("tenant", tenant_id)
        erased = await erase_tenant(store, request.app[BLOBS], tenant_id)
    except NotOffboarded:
        raise Problem(
            409,
            "Conflict",
            f"tenant {tenant_id!r} is onboarded: offboard it first "
            f"(DELETE /v1/tenants/{tenant_id})",
            code="not_offboarded",
        ) from None
    except ArchiverBusy:
        raise Problem(
            409,
            "Conflict",
            "an archiver pass is running; erase again shortly",
            code="archiver_busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    return json_response(erased)


def add_routes(app: web.Application) -> None:
    """Register the erase route."""
    app.router.add_post("/v1/tenants/{tenant_id}/erase", erase)
