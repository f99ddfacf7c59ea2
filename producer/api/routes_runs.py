"""Run and batch routes: retrain one tenant, list and cancel runs, bulk retrains and progress."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from producer.api.auth import principal, require_admin
from producer.api.http import json_response, query_int, read_body, visible_run, visible_tenant
from producer.api.metrics import API_METRICS
from producer.api.problems import Problem, not_found
from producer.api.progress import batch_status
from producer.api.routes_tenants import start_run
from producer.api.state import BLOBS, QUEUE, SETTINGS, STORE
from producer.schemas import (
    MAX_BATCH_TENANTS,
    BatchAccepted,
    BatchCreate,
    RetrainRequest,
    RunList,
    RunPage,
    RunView,
)
from worker.archive_listing import Key, TenantRuns, key_of
from worker.archive_parts import ArchivedRuns
from worker.archive_records import ArchivedBatches
from worker.bulk import start_batch
from worker.schemas import (
    TENANT_ID_PATTERN,
    Batch,
    Lane,
    Run,
    RunState,
    Tenant,
    utcnow,
)
from worker.store import RunRequest, Store

_BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
_TENANT_ID = re.compile(TENANT_ID_PATTERN)
CHUNK = 1000
BAD_CURSOR = "cursor: not a cursor of this listing"
MAX_RUN_OFFSET = 1000  # deeper pages of a tenant's runs go by cursor (the archive is read)


async def retrain(request: web.Request) -> web.Response:
    """``POST /v1/tenants/{tenant_id}/retrains``: 202 with the new or the active run."""
    tenant = await visible_tenant(request)
    body = await read_body(request, RetrainRequest, optional=True)
    _require_training_data(request, tenant)
    # A repeated Idempotency-Key is answered by the idempotency middleware before this runs.
    rerun = await _has_newer_data(request.app[STORE], tenant)
    run_request = RunRequest(
        tenant_id=tenant.id, lane=Lane.INTERACTIVE, reason=body.reason, rerun_if_active=rerun
    )
    accepted = await start_run(request, run_request, tenant)
    return json_response(accepted, 202)


def _require_training_data(request: web.Request, tenant: Tenant) -> None:
    """409 when the run could only fail: no data uploaded and none read by the service itself."""
    service = request.app[SETTINGS].training_services.get(tenant.training_service)
    if tenant.data_path is None and service is not None and service.data_parameter is None:
        raise Problem(
            409,
            "Conflict",
            f"tenant {tenant.id!r} has no training data yet: "
            f"upload it with PUT /v1/tenants/{tenant.id}/data first",
        )


async def _has_newer_data(store: Store, tenant: Tenant) -> bool:
    active = await store.active_run_id(tenant.id)
    run = await store.get_run(active) if active else None
    return run is not None and not run.state.terminal and run.data_version < tenant.data_version


async def tenant_runs(request: web.Request) -> web.Response:
    """``GET /v1/tenants/{tenant_id}/runs``: the tenant's runs newest first, those in Redis
    and the archived ones (``archived: true``), by ``cursor`` (or a small ``offset``)."""
    tenant = await visible_tenant(request)
    limit = query_int(request, "limit", 50, 1, 200)
    raw = request.query.get("cursor") or None
    offset = 0 if raw is not None else query_int(request, "offset", 0, 0, MAX_RUN_OFFSET)
    before = None if raw is None else decode_run_cursor(raw)
    listing = TenantRuns(request.app[STORE], request.app[BLOBS])
    found = await listing.page(tenant.id, before, offset + limit)
    shown = found.items[offset:]
    more = found.next_key is not None
    last = key_of(shown[-1].run) if more and shown else None
    page = RunPage(
        items=[RunView(**item.run.model_dump(), archived=item.archived) for item in shown],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if more and raw is None else None,
        next_cursor=None if last is None else encode_run_cursor(last),
    )
    return json_response(page)


def encode_run_cursor(key: Key) -> str:
    """An opaque cursor: the (creation ms, id) of the last run shown."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_run_cursor(cursor: str) -> Key:
    """The key a cursor names; 422 for anything this listing did not return."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
    except (ValueError, TypeError):
        raise Problem(
            422, "Unprocessable Content", "cursor: not a cursor of this listing"
        ) from None
    if not isinstance(created, int) or not isinstance(run_id, str) or len(run_id) > 64:
        raise Problem(422, "Unprocessable Content", "cursor: not a cursor of this listing")
    return created, run_id


async def get_run(request: web.Request) -> web.Response:
    """``GET /v1/runs/{run_id}``: a run in Redis, or else an archived one (``archived``)."""
    try:
        return json_response(await visible_run(request))
    except Problem as problem:
        if problem.status != 404:
            raise
        archive = ArchivedRuns(request.app[STORE].ledger, request.app[BLOBS])
        archived = await archive.find(request.match_info["run_id"], principal(request).tenant_id)
        if archived is None:
            raise
    return json_response(RunView(**archived.model_dump(), archived=True))


async def cancel_run(request: web.Request) -> web.Response:
    """``DELETE /v1/runs/{run_id}``: ask the run to stop; 202, or 409 when it has ended."""
    run = await visible_run(request)
    if run.state.terminal:
        raise Problem(409, "Conflict", f"run {run.id} has already ended ({run.state.value})")
    store = request.app[STORE]
    await store.request_cancel(run.id)
    await request.app[QUEUE].advance(run.id, run.version)
    updated = await store.get_run(run.id)
    return json_response(updated or run, 202)


async def _selected_tenants(store: Store, body: BatchCreate) -> tuple[list[Tenant], list[str]]:
    if body.tenant_ids is None:
        ids: Sequence[str] = await store.list_tenant_ids(0, await store.count_tenants() + CHUNK)
    else:
        ids = list(dict.fromkeys(body.tenant_ids))
    tenants: list[Tenant] = []
    for start in range(0, len(ids), CHUNK):
        tenants.extend(await store.get_tenants(ids[start : start + CHUNK]))
    found = {t.id for t in tenants if not t.deleted}
    missing = [] if body.tenant_ids is None else [i for i in ids if i not in found]
    kind = body.target_kind
    chosen = [t for t in tenants if not t.deleted and kind in (None, t.target.kind)]
    return chosen, missing


async def create_batch(request: web.Request) -> web.Response:
    """``POST /v1/batches``: a bulk retrain; runs are written in pipelined chunks."""
    require_admin(request)
    body = await read_body(request, BatchCreate)
    store = request.app[STORE]
    tenants, missing = await _selected_tenants(store, body)
    started = await start_batch(
        store,
        request.app[QUEUE],
        tenants,
        reason=body.reason,
        concurrency=request.app[SETTINGS].enqueue_concurrency,
        services=request.app[SETTINGS].training_services,
    )
    API_METRICS.runs_enqueued.labels(Lane.BULK.value).inc(started.created)
    accepted = BatchAccepted(
        batch_id=started.batch.id,
        total=started.created,
        coalesced=started.coalesced,
        not_found=missing[:1000],
    )
    return json_response(accepted, 202)


async def get_batch(request: web.Request) -> web.Response:
    """``GET /v1/batches/{batch_id}``: progress of a bulk retrain."""
    require_admin(request)
    batch_id = request.match_info["batch_id"]
    if not _BATCH_ID.fullmatch(batch_id):
        raise not_found("batch", batch_id[:80])
    found = await request.app[STORE].get_batch(batch_id)
    if found is not None:
        return json_response(batch_status(*found))
    summary = await ArchivedBatches(request.app[STORE], request.app[BLOBS]).find_batch(batch_id)
    if summary is None:
        raise not_found("batch", batch_id)
    batch = Batch(
        id=summary.id,
        lane=summary.lane,
        total=summary.total,
        created_at=summary.created_at,
        reason=summary.reason,
    )
    counters = {f"n:{state}": n for state, n in summary.counts.items()}
    if summary.last_finished_at is not None:
        counters["last_finished_ms"] = int(summary.last_finished_at.timestamp() * 1000)
    status = batch_status(batch, counters)
    return json_response(status.model_copy(update={"archived": True}))


# --- listing runs -----------------------------------------------------------------------------

# Runs have no index of their own across tenants: a listing reads the runs of one batch, of one
# tenant, or the newest runs of the newest tenants, and filters them here. These bounds keep one
# request cheap; ``truncated`` says when they cut the listing short.
LIST_TENANT_RUNS = 1000
LIST_SCAN_TENANTS = 500
LIST_RUNS_PER_TENANT = 20
_DURATION = re.compile(r"^(\d{1,5})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(raw: str, now: datetime) -> datetime:
    """``30m``, ``2h``, ``7d`` (before ``now``) or an ISO 8601 time (UTC if no zone given)."""
    duration = _DURATION.fullmatch(raw)
    if duration is not None:
        return now - timedelta(seconds=int(duration[1]) * _UNIT_SECONDS[duration[2]])
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise Problem(
            422, "Unprocessable Content", "since: a duration like 30m, 2h, 7d or an ISO 8601 time"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_states(raw: str | None) -> set[RunState] | None:
    """Comma-separated run states, or None for every state."""
    if not raw:
        return None
    try:
        return {RunState(part.strip()) for part in raw.split(",") if part.strip()}
    except ValueError:
        names = ", ".join(state.value for state in RunState)
        raise Problem(422, "Unprocessable Content", f"state: one or more of {names}") from None


@dataclass(frozen=True)
class RunFilter:
    """What a listing keeps: states, one tenant, runs created at or after ``since``."""

    states: set[RunState] | None = None
    tenant_id: str | None = None
    since: datetime | None = None

    def keeps(self, run: Run) -> bool:
        """Whether ``run`` passes every filter."""
        return (
            (self.states is None or run.state in self.states)
            and (self.tenant_id is None or run.tenant_id == self.tenant_id)
            and (self.since is None or run.created_at >= self.since)
        )


async def _candidate_runs(store: Store, batch_id: str | None) -> tuple[list[Run], bool]:
    """Runs to filter and whether the bounds left some out."""
    if batch_id is not None:
        runs: list[Run] = []
        for offset in range(0, MAX_BATCH_TENANTS, CHUNK):
            ids = await store.batch_run_ids(batch_id, offset, CHUNK)
            runs += await store.get_runs(ids)
            if len(ids) < CHUNK:
                break
        return runs, False
    total = await store.count_tenants()
    first = max(0, total - LIST_SCAN_TENANTS)
    runs = []
    for tenant in await store.list_tenant_ids(first, LIST_SCAN_TENANTS):
        ids = await store.tenant_run_ids(tenant, 0, LIST_RUNS_PER_TENANT)
        runs += await store.get_runs(ids)
    return runs, first > 0


async def list_runs(request: web.Request) -> web.Response:
    """``GET /v1/runs``: runs newest first, filtered by state, tenant, batch and age.

    A tenant key sees only its own tenant's runs; batches are admin-only.
    """
    caller = principal(request)
    tenant_id = request.query.get("tenant") or None
    batch_id = request.query.get("batch") or None
    if not caller.admin:
        if batch_id is not None:
            require_admin(request)
        if tenant_id not in (None, caller.tenant_id):
            raise not_found("tenant", tenant_id[:80])
        tenant_id = caller.tenant_id
    if batch_id is not None and not _BATCH_ID.fullmatch(batch_id):
        raise not_found("batch", batch_id[:80])
    if tenant_id is not None and not _TENANT_ID.fullmatch(tenant_id):
        raise not_found("tenant", tenant_id[:80])
    since_raw = request.query.get("since")
    keep = RunFilter(
        states=parse_states(request.query.get("state")),
        tenant_id=tenant_id,
        since=parse_since(since_raw, utcnow()) if since_raw else None,
    )
    limit = query_int(request, "limit", 50, 1, 500)
    store = request.app[STORE]
    if batch_id is not None and await store.get_batch(batch_id) is None:
        raise not_found("batch", batch_id)
    if tenant_id is not None and batch_id is None:
        # One tenant: its runs in Redis and then its archive, newest first.
        tenant_runs = TenantRuns(store, request.app[BLOBS])
        found, scanned, truncated = await tenant_runs.scan(
            tenant_id, keep.keeps, limit + 1, LIST_TENANT_RUNS, keep.since
        )
        items = [RunView(**i.run.model_dump(), archived=i.archived) for i in found]
    else:
        candidates, truncated = await _candidate_runs(store, batch_id)
        kept = sorted(filter(keep.keeps, candidates), key=lambda r: r.created_at, reverse=True)
        items = [RunView(**run.model_dump()) for run in kept]
        scanned = len(candidates)
    listing = RunList(
        items=items[:limit],
        limit=limit,
        more=len(items) > limit,
        scanned=scanned,
        truncated=truncated,
    )
    return json_response(listing)


def add_routes(app: web.Application) -> None:
    """Register the run and batch routes."""
    app.router.add_post("/v1/tenants/{tenant_id}/retrains", retrain)
    app.router.add_get("/v1/tenants/{tenant_id}/runs", tenant_runs)
    app.router.add_get("/v1/runs", list_runs)
    app.router.add_get("/v1/runs/{run_id}", get_run)
    app.router.add_delete("/v1/runs/{run_id}", cancel_run)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
