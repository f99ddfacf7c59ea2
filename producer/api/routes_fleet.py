"""Read-only views for the dashboard (fleet overview, batches, batch runs) and the UI's files.

The UI under ``/ui`` is static and public; every number it shows comes from these JSON routes
(and the tenant and run routes), called with the key typed at its login form.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from producer.api.auth import principal, require_admin
from producer.api.failures import failure_class, message_shape
from producer.api.http import json_response, query_flag, query_int
from producer.api.metrics import API_METRICS
from producer.api.problems import Problem, not_found
from producer.api.progress import batch_status
from producer.api.state import QUEUE, SETTINGS, STORE
from producer.schemas import (
    RUN_ID_PATTERN,
    Activity,
    Backlog,
    BatchAccepted,
    BatchPage,
    BatchRuns,
    BatchStatus,
    Caller,
    EndpointSlots,
    FleetOverview,
    FleetTenants,
    HourCounts,
    RunBrief,
    ServiceLoad,
)
from worker.bulk import start_batch
from worker.schemas import Lane, Run, RunState
from worker.store import Store, now_ms
from worker.views import FleetCounts, FleetViews, Load, activity_window, runs_by_hour, window_start

UI_DIR = Path(__file__).with_name("ui")
# The tenant scan reads every tenant record inside Redis (about 6 ms per page of 500 on a
# 2-core machine); dashboards poll every few seconds, so one scan serves every caller of this
# API process for SCAN_TTL_SECONDS, or for SCAN_TTL_FACTOR times its own duration when that
# is longer, so scans of a large fleet take at most a tenth of Redis's time per process.
SCAN_TTL_SECONDS = 2.0
SCAN_TTL_FACTOR = 10
BATCH_ID = re.compile(RUN_ID_PATTERN)
RETRY_CHUNK = 1000
# The UI runs only its own files: no inline script, no other origin (tenant names are data).
UI_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def me(request: web.Request) -> web.Response:
    """``GET /v1/me``: whether the key is an admin key, or which tenant it belongs to."""
    caller = principal(request)
    return json_response(Caller(admin=caller.admin, tenant_id=caller.tenant_id))


def views(request: web.Request) -> FleetViews:
    """The fleet's read models, over the app's store and settings."""
    return FleetViews.of(request.app[STORE], request.app[SETTINGS])


@dataclass(frozen=True)
class WindowRuns:
    """A scan's runs of the window as the body shows them: by hour, by state, the chart."""

    by_hour: list[HourCounts]
    by_state: dict[str, int]
    activity: Activity


def window_runs(counts: FleetCounts, now: int, hours: int) -> WindowRuns:
    """The runs of ``counts`` created in the last ``hours`` before ``now`` (ms), counted (a
    pass over every run of the scan, so a cached scan keeps this too)."""
    seconds, buckets = activity_window(counts.recent, now, hours)
    activity = Activity(
        bucket_seconds=seconds,
        buckets=[
            HourCounts(start=datetime.fromtimestamp(start / 1000, UTC), counts=by_state)
            for start, by_state in buckets
        ],
    )
    by_hour = [
        HourCounts(start=datetime.fromtimestamp(start / 1000, UTC), counts=by_state)
        for start, by_state in runs_by_hour(counts.recent, now, hours)
    ]
    return WindowRuns(by_hour, counts.runs_by_state(), activity)


def overview(
    counts: FleetCounts, load: Load, now: int, hours: int, runs: WindowRuns | None = None
) -> FleetOverview:
    """The ``/v1/fleet`` body from the fleet counts and the load read at ``now`` (ms), with
    the window's runs counted from ``counts`` unless given."""
    runs = runs or window_runs(counts, now, hours)
    tenants = FleetTenants(
        total=counts.total,
        scanned=counts.scanned,
        complete=counts.complete,
        by_kind=counts.by_kind,
        by_model_state=counts.by_model_state,
    )
    services = [
        ServiceLoad(
            name=service.name,
            slots_in_use=service.in_use,
            max_running=service.cap,
            waiting_interactive=service.waiting[Lane.INTERACTIVE],
            waiting_bulk=service.waiting[Lane.BULK],
            throttled=service.throttled,
            throttle_seconds_left=service.throttle_seconds,
            endpoints=[
                EndpointSlots(
                    index=endpoint.index,
                    slots_in_use=endpoint.in_use,
                    max_concurrent_jobs=endpoint.cap,
                )
                for endpoint in service.endpoints
            ],
        )
        for service in load.services
    ]
    backlog = load.backlog
    return FleetOverview(
        generated_at=datetime.fromtimestamp(now / 1000, UTC),
        tenants=tenants,
        services=services,
        backlog=Backlog(
            ready=backlog.ready, deferred=backlog.deferred, waiting_slot=backlog.waiting_slot
        ),
        hours=hours,
        runs_by_hour=runs.by_hour,
        runs_by_state=runs.by_state,
        activity=runs.activity,
    )


@dataclass
class ScanCache:
    """The last tenant scan of this process: when it ran, for how long it serves, its window
    start, its result and its runs counted per ``hours`` asked; one scan at a time."""

    taken_at: float = -SCAN_TTL_SECONDS
    ttl: float = SCAN_TTL_SECONDS
    since: int = 0
    result: FleetCounts | None = None
    # Counting a scan's runs is a pass over all of them (100,000 after a bulk retrain of
    # 100,000 tenants): done once per scan, not on every answer the scan serves.
    runs: dict[int, WindowRuns] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


SCAN_CACHE = web.AppKey("fleet_scan_cache", ScanCache)


async def _cached_scan(
    request: web.Request, now: int, hours: int
) -> tuple[FleetCounts, WindowRuns]:
    cache = request.app[SCAN_CACHE]
    since = window_start(now, hours)
    async with cache.lock:  # callers arriving during a scan get its result
        fresh = time.monotonic() - cache.taken_at < cache.ttl
        if cache.result is None or not fresh or cache.since != since:
            began = time.monotonic()
            cache.result = await views(request).tenants(since)
            cache.taken_at, cache.since, cache.runs = time.monotonic(), since, {}
            cache.ttl = max(SCAN_TTL_SECONDS, SCAN_TTL_FACTOR * (cache.taken_at - began))
        if hours not in cache.runs:
            cache.runs[hours] = window_runs(cache.result, now, hours)
        return cache.result, cache.runs[hours]


async def fleet(request: web.Request) -> web.Response:
    """``GET /v1/fleet`` (admin): tenants, BES slots, backlog and runs of the last hours."""
    require_admin(request)
    hours = query_int(request, "hours", 24, 1, 168)
    now = now_ms()
    counts, runs = await _cached_scan(request, now, hours)
    load = await views(request).load()
    return json_response(overview(counts, load, now, hours, runs))


async def list_batches(request: web.Request) -> web.Response:
    """``GET /v1/batches`` (admin): recent bulk retrains with their progress, newest first."""
    require_admin(request)
    limit = query_int(request, "limit", 20, 1, 100)
    store = request.app[STORE]
    ids, total = await views(request).recent_batches(limit)
    items: list[BatchStatus] = []
    for batch_id in ids:
        found = await store.get_batch(batch_id)
        if found is not None:
            items.append(batch_status(*found))
    return json_response(BatchPage(items=items, total=total))


FAILED_STATES = frozenset({RunState.FAILED, RunState.CANCELLED})


def brief(run: Run) -> RunBrief:
    """A run as the batch timeline shows it; a failed or cancelled run with its failure group."""
    shown = RunBrief.model_validate(run.model_dump())
    if run.state not in FAILED_STATES:
        return shown
    return shown.model_copy(
        update={
            "failure_class": failure_class(run.error_code, run.error),
            "failure_shape": message_shape(run.error),
        }
    )


async def batch_runs(request: web.Request) -> web.Response:
    """``GET /v1/batches/{batch_id}/runs`` (admin): a page of the batch's runs with phases."""
    require_admin(request)
    batch_id = request.match_info["batch_id"]
    store = request.app[STORE]
    if not BATCH_ID.fullmatch(batch_id) or await store.get_batch(batch_id) is None:
        raise not_found("batch", batch_id[:80])
    limit = query_int(request, "limit", 500, 1, 2000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    total = await views(request).batch_size(batch_id)
    runs = await store.get_runs(await store.batch_run_ids(batch_id, offset, limit))
    items = [brief(run) for run in runs]
    page = BatchRuns(
        batch_id=batch_id,
        items=items,
        total=total,
        offset=offset,
        limit=limit,
        next_offset=offset + limit if offset + limit < total else None,
    )
    return json_response(page)


async def _tenants_with_runs_in(store: Store, batch_id: str, states: set[RunState]) -> list[str]:
    """Ids of the tenants whose runs in the batch ended in one of ``states``, in batch order
    (archived runs have left the batch's list and are not among them)."""
    found: dict[str, None] = {}
    offset = 0
    while True:
        ids = await store.batch_run_ids(batch_id, offset, RETRY_CHUNK)
        for run in await store.get_runs(ids):
            if run.state in states:
                found[run.tenant_id] = None
        if len(ids) < RETRY_CHUNK:
            return list(found)
        offset += RETRY_CHUNK


async def retry_failed(request: web.Request) -> web.Response:
    """``POST /v1/batches/{batch_id}/retry-failed`` (admin): a new bulk retrain of the tenants
    whose runs in the batch failed (with ``include_cancelled``, also were cancelled); 409 when
    there is no such tenant left to retrain."""
    require_admin(request)
    batch_id = request.match_info["batch_id"]
    store = request.app[STORE]
    if not BATCH_ID.fullmatch(batch_id) or await store.get_batch(batch_id) is None:
        raise not_found("batch", batch_id[:80])
    states = {RunState.FAILED}
    if query_flag(request, "include_cancelled"):
        states.add(RunState.CANCELLED)
    tenant_ids = await _tenants_with_runs_in(store, batch_id, states)
    named = " or ".join(sorted(state.value for state in states))
    if not tenant_ids:
        raise Problem(409, "Conflict", f"batch {batch_id} has no {named} runs to retry")
    tenants = [t for t in await store.get_tenants(tenant_ids) if not t.deleted]
    if not tenants:
        raise Problem(
            409, "Conflict", f"every tenant with {named} runs in batch {batch_id} was offboarded"
        )
    settings = request.app[SETTINGS]
    started = await start_batch(
        store,
        request.app[QUEUE],
        tenants,
        reason=f"retry of {batch_id}",
        concurrency=settings.enqueue_concurrency,
        services=settings.training_services,
    )
    API_METRICS.runs_enqueued.labels(Lane.BULK.value).inc(started.created)
    kept = {t.id for t in tenants}
    accepted = BatchAccepted(
        batch_id=started.batch.id,
        total=started.created,
        coalesced=started.coalesced,
        not_found=[tenant_id for tenant_id in tenant_ids if tenant_id not in kept][:1000],
    )
    return json_response(accepted, 202)


async def ui_index(_request: web.Request) -> web.FileResponse:
    """``GET /ui``: the dashboard's single page."""
    return web.FileResponse(UI_DIR / "index.html")


async def ui_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Security and caching headers on the UI's files (an ``on_response_prepare`` signal)."""
    if request.path == "/ui" or request.path.startswith("/ui/"):
        response.headers.update(UI_HEADERS)


def add_routes(app: web.Application) -> None:
    """Register the dashboard's JSON routes and its static files."""
    app[SCAN_CACHE] = ScanCache()
    app.router.add_get("/v1/me", me)
    app.router.add_get("/v1/fleet", fleet)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}/runs", batch_runs)
    app.router.add_post("/v1/batches/{batch_id}/retry-failed", retry_failed)
    app.router.add_get("/ui", ui_index)
    app.router.add_get("/ui/", ui_index)
    app.router.add_static("/ui/", UI_DIR, follow_symlinks=False, append_version=False)
    app.on_response_prepare.append(ui_headers)
