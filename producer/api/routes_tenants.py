"""Tenant routes: onboard, list, show, change, offboard, upload data, models, rollback."""

from __future__ import annotations

import secrets
from collections.abc import Collection

from aiohttp import web

from producer.api.auth import TENANT_KEY_PREFIX, hash_key, principal, require_admin
from producer.api.http import (
    json_response,
    query_flag,
    query_int,
    read_body,
    visible_tenant,
)
from producer.api.metrics import API_METRICS
from producer.api.pools import filled_meanwhile, joined_pool, kept_pool, pool_capacity
from producer.api.preflight import ALL_FIELDS as ALL_REMOTE
from producer.api.preflight import VERIFICATIONS, verify_tenant
from producer.api.problems import Problem
from producer.api.state import BLOBS, QUEUE, SCHEDULES, SETTINGS, STORE
from producer.api.tenant_listing import ListingError, index_page, parse_query, select
from producer.api.uploads import CsvCheck, read_upload
from producer.schemas import (
    DataUploaded,
    Models,
    Offboarded,
    RunAccepted,
    TenantCreate,
    TenantCreated,
    TenantListItem,
    TenantPage,
    TenantPatch,
    TenantView,
)
from worker.blobs import training_data_path
from worker.cron import check_interval
from worker.datapaths import DataPathError, check_data_path, check_global_parameters
from worker.evaluate import patched_gate
from worker.schemas import Lane, Run, Tenant
from worker.store import RunRequest, TenantExists
from worker.tenants import PoolFull
from worker.verification import Verification
from worker.views import FleetViews, TenantRow

NULLABLE = frozenset({"data_path", "gate", "schedule", "retention"})
ADMIN_FIELDS = frozenset({"retention"})
ALL_FIELDS = frozenset({"data_path", "global_parameters", "training_service", "schedule"})


def tenant_view(tenant: Tenant, verified: bool | None = None) -> TenantView:
    """The API's view of a tenant (without key hashes)."""
    fields = tenant.model_dump(exclude={"api_key_hashes", "deleted"})
    return TenantView.model_validate({**fields, "verified": verified})


async def _verified(request: web.Request, tenant_id: str) -> bool | None:
    found = await request.app[VERIFICATIONS].get_many([tenant_id])
    return found[tenant_id].verified if tenant_id in found else None


def check_tenant_fields(
    request: web.Request, tenant: Tenant, changed: Collection[str] = ALL_FIELDS
) -> None:
    """422 unless the tenant's data, data parameter and schedule are allowed to its caller.

    A tenant key names only paths under ``data/{tenant}/``; an admin also the shared
    prefixes of the settings; nobody another tenant's prefix. Only ``changed`` fields are
    checked (a foreign path stored earlier is refused by its next run, not by every PATCH).
    """
    settings = request.app[SETTINGS]
    if tenant.data_path is not None and "data_path" in changed:
        shared = settings.shared_data_prefixes if principal(request).admin else ()
        check_data_path(tenant.id, tenant.data_path, shared)
    service = settings.training_services.get(tenant.training_service)
    if {"global_parameters", "training_service"} & set(changed):
        parameter = service.data_parameter if service else None
        check_global_parameters(tenant.global_parameters, parameter)
    if tenant.schedule is not None and "schedule" in changed:
        try:
            check_interval(tenant.schedule, settings.min_tenant_schedule_seconds)
        except ValueError as exc:
            raise Problem(422, "Unprocessable Content", f"schedule: {exc}") from None


def _check_service(request: web.Request, name: str) -> None:
    known = request.app[SETTINGS].training_services
    if known and name not in known:
        raise Problem(
            422,
            "Unprocessable Content",
            f"training_service: unknown service {name!r}; known: {', '.join(sorted(known))}",
        )


async def start_run(request: web.Request, run_request: RunRequest, tenant: Tenant) -> RunAccepted:
    """Create (or coalesce into the active) run and enqueue the first step of a new one.

    A training run of a tenant whose stored data path is not its own (set before paths were
    checked) is refused with the code ``foreign_data_path``; the worker checks again.
    """
    if run_request.rollback_to is None and tenant.data_path is not None:
        shared = request.app[SETTINGS].shared_data_prefixes
        try:
            check_data_path(tenant.id, tenant.data_path, shared)
        except DataPathError as exc:
            raise Problem(409, "Conflict", str(exc), code=exc.code) from None
    store = request.app[STORE]
    created = await store.create_run(run_request, tenant=tenant)
    if created.created:
        await request.app[QUEUE].advance(created.run_id, 0)
        API_METRICS.runs_enqueued.labels(run_request.lane.value).inc()
    run = await store.get_run(created.run_id)
    if run is None:  # ended and expired between the two calls: practically never
        raise Problem(409, "Conflict", "the run vanished while it was created; try again")
    return RunAccepted(run=run, coalesced=not created.created)


async def create_tenant(request: web.Request) -> web.Response:
    """``POST /v1/tenants``: onboard a tenant; 201 with its key (shown once) and first run."""
    require_admin(request)
    body = await read_body(request, TenantCreate)
    store = request.app[STORE]
    api_key = TENANT_KEY_PREFIX + secrets.token_urlsafe(32)
    digest = hash_key(api_key)
    tenant = Tenant(
        **body.model_dump(exclude={"train"}),
        api_key_hashes=[digest],
    )
    named_service = "training_service" in body.model_fields_set
    counts = await store.pool_tenants()
    tenant = joined_pool(request.app[SETTINGS], tenant, counts, named_service=named_service)
    _check_service(request, tenant.training_service)
    check_tenant_fields(request, tenant)
    outcome = await verify_tenant(request, tenant)  # before anything is stored
    if not await store.register_api_key(digest, tenant.id):
        raise Problem(409, "Conflict", "API key collision; try again")
    try:
        await store.create_tenant(
            tenant, pool_capacity=pool_capacity(request.app[SETTINGS], tenant)
        )
    except TenantExists:
        await store.drop_api_keys([digest])
        raise Problem(409, "Conflict", f"tenant {tenant.id!r} exists (or was offboarded)") from None
    except PoolFull as exc:
        await store.drop_api_keys([digest])
        raise filled_meanwhile(str(exc)) from None
    await request.app[VERIFICATIONS].record(tenant.id, outcome)
    if tenant.schedule is not None:
        await request.app[SCHEDULES].put_tenant(tenant.id, tenant.schedule)
    run: Run | None = None
    if body.train and tenant.data_path is not None:
        request_ = RunRequest(tenant_id=tenant.id, lane=Lane.INTERACTIVE, reason="onboarding")
        run = (await start_run(request, request_, tenant)).run
    created = TenantCreated(tenant=tenant_view(tenant, outcome.verified), api_key=api_key, run=run)
    return json_response(created, 201)


async def list_tenants(request: web.Request) -> web.Response:
    """``GET /v1/tenants``: a page of tenants, filtered by model state, kind and id prefix,
    sorted by creation (default), id, model state or gate metric; ``cursor`` continues."""
    require_admin(request)
    limit = query_int(request, "limit", 100, 1, 500)
    offset = query_int(request, "offset", 0, 0, 10**9)
    try:
        query = parse_query(dict(request.query), offset)
    except ListingError as exc:
        raise Problem(422, "Unprocessable Content", str(exc)) from None
    views = FleetViews.of(request.app[STORE], request.app[SETTINGS])
    if query.index_order:  # the dashboard's first page: no scan of the whole fleet
        rows, total = await views.tenant_rows_at(query.offset, limit + 1)
        chosen = index_page(rows, query, limit, total)
    else:
        rows, total = await views.tenant_rows()
        chosen = select(rows, query, limit)
    ids = [row.id for row in chosen.rows]
    found = {t.id: t for t in await request.app[STORE].get_tenants(ids)}
    verified = await request.app[VERIFICATIONS].get_many(ids)
    items = [_list_item(found.get(row.id), row, verified.get(row.id)) for row in chosen.rows]
    page = TenantPage(
        items=[item for item in items if item is not None],
        total=total,
        matched=chosen.matched,
        scanned=len(rows),
        sort=query.sort_name,
        offset=chosen.start,
        limit=limit,
        next_offset=chosen.next_offset,
        next_cursor=chosen.next_cursor,
    )
    return json_response(page)


def _list_item(
    tenant: Tenant | None, row: TenantRow, outcome: Verification | None
) -> TenantListItem | None:
    """A listed tenant with its model state (None if it was removed since its row was read)."""
    if tenant is None or tenant.deleted:
        return None
    view = tenant_view(tenant, outcome.verified if outcome else None)
    return TenantListItem(
        **view.model_dump(),
        model_state=row.model_state,
        latest_run_state=row.latest_state,
    )


async def get_tenant(request: web.Request) -> web.Response:
    """``GET /v1/tenants/{tenant_id}``."""
    tenant = await visible_tenant(request)
    return json_response(tenant_view(tenant, await _verified(request, tenant.id)))


async def patch_tenant(request: web.Request) -> web.Response:
    """``PATCH /v1/tenants/{tenant_id}``: change the fields given."""
    current = await visible_tenant(request)
    body = await read_body(request, TenantPatch)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if ADMIN_FIELDS & changes.keys() and not principal(request).admin:
        raise Problem(403, "Forbidden", "retention: only an admin key may change it")
    for name, value in changes.items():
        if value is None and name not in NULLABLE:
            raise Problem(422, "Unprocessable Content", f"{name}: may not be null")
    if "training_service" in changes:
        _check_service(request, changes["training_service"])
    if "gate" in changes:
        changes["gate"] = patched_gate(changes["gate"], current.gate)
    changes = kept_pool(request.app[SETTINGS], current, changes)
    merged = Tenant.model_validate({**current.model_dump(), **changes})
    check_tenant_fields(request, merged, changes.keys())
    outcome = None
    if ALL_REMOTE & changes.keys():  # the target or what it is checked against changed
        outcome = await verify_tenant(request, merged)

    def change(tenant: Tenant) -> Tenant | None:
        if tenant.deleted:
            return None
        return Tenant.model_validate({**tenant.model_dump(), **changes})

    updated = await request.app[STORE].update_tenant(current.id, change)
    if updated.deleted:
        raise Problem(404, "Not Found", f"no tenant {current.id!r}")
    if "schedule" in changes:
        await request.app[SCHEDULES].put_tenant(updated.id, updated.schedule)
    if outcome is not None:
        await request.app[VERIFICATIONS].record(updated.id, outcome)
        return json_response(tenant_view(updated, outcome.verified))
    return json_response(tenant_view(updated, await _verified(request, updated.id)))


async def delete_tenant(request: web.Request) -> web.Response:
    """``DELETE /v1/tenants/{tenant_id}``: offboard (revoke keys, cancel the active run)."""
    tenant = await visible_tenant(request)
    require_admin(request)
    remove_remote = query_flag(request, "remove_remote")
    store = request.app[STORE]
    await store.offboard_tenant(tenant.id, remove_remote=remove_remote)
    if remove_remote:
        await request.app[QUEUE].offboard(tenant.id)
    await request.app[SCHEDULES].put_tenant(tenant.id, None)
    cancelled: str | None = None
    active = await store.active_run_id(tenant.id)
    run = await store.get_run(active) if active else None
    if run is not None and not run.state.terminal and await store.request_cancel(run.id):
        await request.app[QUEUE].advance(run.id, run.version)
        cancelled = run.id
    removal = "requested" if remove_remote else None
    return json_response(
        Offboarded(tenant_id=tenant.id, cancelled_run_id=cancelled, remote_removal=removal)
    )


async def upload_data(request: web.Request) -> web.Response:
    """``PUT /v1/tenants/{tenant_id}/data``: store a training CSV as the next data version."""
    tenant = await visible_tenant(request)
    settings = request.app[SETTINGS]
    service = settings.training_services.get(tenant.training_service)
    check = CsvCheck(
        required=service.columns if service else (),
        numeric=settings.numeric_columns.get(tenant.training_service, ()),
        max_rows=settings.max_upload_rows,
    )
    # Checked while it arrives: a refused file stores nothing and changes no data version.
    data = await read_upload(request, settings.max_upload_bytes, check)
    columns = check.header
    store = request.app[STORE]
    version = await store.next_data_version(tenant.id)
    path = training_data_path(tenant.id, f"v{version}")
    await request.app[BLOBS].upload(path, data)

    def change(current: Tenant) -> Tenant | None:
        if current.data_version >= version:
            return None  # a newer upload finished first
        current.data_version = version
        current.data_path = path
        return current

    await store.update_tenant(tenant.id, change)
    uploaded = DataUploaded(
        tenant_id=tenant.id,
        data_version=version,
        data_path=path,
        size_bytes=len(data),
        columns=columns,
    )
    return json_response(uploaded)


async def get_models(request: web.Request) -> web.Response:
    """``GET /v1/tenants/{tenant_id}/models``: the current model and the history."""
    tenant = await visible_tenant(request)
    history = await request.app[STORE].model_history(tenant.id)
    return json_response(Models(current=tenant.deployed, history=history))


async def rollback(request: web.Request) -> web.Response:
    """``POST /v1/tenants/{tenant_id}/rollback``: redeploy the previously deployed model."""
    tenant = await visible_tenant(request)
    current = tenant.deployed
    if current is None:
        raise Problem(409, "Conflict", f"tenant {tenant.id!r} has no deployed model")
    history = await request.app[STORE].model_history(tenant.id)
    previous = next(
        (m for m in history if m.run_id != current.run_id and m.model_path != current.model_path),
        None,
    )
    if previous is None:
        raise Problem(409, "Conflict", f"tenant {tenant.id!r} has no previous model")
    run_request = RunRequest(
        tenant_id=tenant.id, lane=Lane.INTERACTIVE, reason="rollback", rollback_to=previous.run_id
    )
    accepted = await start_run(request, run_request, tenant)
    if accepted.coalesced:
        raise Problem(
            409,
            "Conflict",
            f"run {accepted.run.id} of this tenant is still active; cancel it or wait",
            active_run_id=accepted.run.id,
        )
    return json_response(accepted, 202)


def add_routes(app: web.Application) -> None:
    """Register the tenant routes."""
    app.router.add_post("/v1/tenants", create_tenant)
    app.router.add_get("/v1/tenants", list_tenants)
    app.router.add_get("/v1/tenants/{tenant_id}", get_tenant)
    app.router.add_patch("/v1/tenants/{tenant_id}", patch_tenant)
    app.router.add_delete("/v1/tenants/{tenant_id}", delete_tenant)
    app.router.add_put("/v1/tenants/{tenant_id}/data", upload_data)
    app.router.add_get("/v1/tenants/{tenant_id}/models", get_models)
    app.router.add_post("/v1/tenants/{tenant_id}/rollback", rollback)
