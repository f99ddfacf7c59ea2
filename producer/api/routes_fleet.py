"""Read-only views for the dashboard (fleet overview, batches, batch runs) and the UI's files.

The UI under ``/ui`` is static and public; every number it shows comes from these JSON routes
(and the tenant and run routes), called with the key typed at its login form.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from producer.api.auth import principal, require_admin
from producer.api.http import json_response, query_int
from producer.api.problems import not_found
from producer.api.routes_runs import batch_status
from producer.api.state import REDIS, SETTINGS, STORE
from producer.schemas import (
    RUN_ID_PATTERN,
    Backlog,
    BatchPage,
    BatchRuns,
    BatchStatus,
    Caller,
    FleetOverview,
    FleetTenants,
    HourCounts,
    RunBrief,
    ServiceLoad,
)
from worker.redisio import reply
from worker.schemas import Lane, RunState
from worker.store import Store, now_ms

UI_DIR = Path(__file__).with_name("ui")
# The tenant scan reads every tenant record inside Redis (about 6 ms per page of 500 on a
# 2-core machine); dashboards poll every few seconds, so one scan serves every caller of this
# API process for SCAN_TTL_SECONDS, or for SCAN_TTL_FACTOR times its own duration when that
# is longer, so scans of a large fleet take at most a tenth of Redis's time per process.
SCAN_TTL_SECONDS = 2.0
SCAN_TTL_FACTOR = 10
BATCH_ID = re.compile(RUN_ID_PATTERN)
SCAN_CHUNK = 500
MAX_SCANNED_TENANTS = 200_000
HOUR_MS = 3_600_000
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


def model_state(deployed: bool, latest_state: str | None) -> str:
    """The state of a tenant's model from whether one is deployed and its latest run's state."""
    if latest_state is not None and not RunState(latest_state).terminal:
        return "retraining"
    if not deployed:
        return "no_model"
    if latest_state in (None, RunState.SUCCEEDED.value):
        return "up_to_date"
    return "kept_previous"


async def _scan_tenants(store: Store, since_ms: int) -> tuple[FleetTenants, list[tuple[str, int]]]:
    """Count tenants; also collect (state, created ms) of runs created since ``since_ms``."""
    total = await store.count_tenants()
    by_kind: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    recent: list[tuple[str, int]] = []
    scanned = 0
    for offset in range(0, min(total, MAX_SCANNED_TENANTS), SCAN_CHUNK):
        page = await store.fleet_page(offset, SCAN_CHUNK, since_ms)
        for tenant in page.tenants:
            by_kind[tenant.kind] += 1
            by_state[model_state(tenant.deployed, tenant.latest_state)] += 1
        recent += page.recent
        scanned += len(page.tenants)
    counts = FleetTenants(
        total=total, scanned=scanned, by_kind=dict(by_kind), by_model_state=dict(by_state)
    )
    return counts, recent


def hourly(recent: list[tuple[str, int]], now: int, hours: int) -> list[HourCounts]:
    """Runs by the hour they were created in (oldest first), each hour by state."""
    current_hour = now - now % HOUR_MS
    first = current_hour - (hours - 1) * HOUR_MS
    buckets: list[Counter[str]] = [Counter() for _ in range(hours)]
    for state, created in recent:
        index = (created - first) // HOUR_MS
        if 0 <= index < hours:
            buckets[index][state] += 1
    return [
        HourCounts(start=datetime.fromtimestamp((first + i * HOUR_MS) / 1000, UTC), counts=dict(c))
        for i, c in enumerate(buckets)
    ]


async def _services(request: web.Request) -> list[ServiceLoad]:
    redis, keys = request.app[REDIS], request.app[STORE].keys
    configured = request.app[SETTINGS].training_services
    names = sorted(configured) or ["default"]
    now = now_ms()
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zcount(keys.slots(name), f"({now}", "+inf")  # expired leases are free slots
            pipe.zcard(keys.waiting(name, Lane.INTERACTIVE.value))
            pipe.zcard(keys.waiting(name, Lane.BULK.value))
            pipe.exists(keys.throttle(name))
        replies = await pipe.execute()
    return [
        ServiceLoad(
            name=name,
            slots_in_use=int(replies[4 * i]),
            max_running=configured[name].max_running if name in configured else None,
            waiting_interactive=int(replies[4 * i + 1]),
            waiting_bulk=int(replies[4 * i + 2]),
            throttled=bool(replies[4 * i + 3]),
        )
        for i, name in enumerate(names)
    ]


@dataclass
class ScanCache:
    """The last tenant scan of this process: when it ran, for how long it serves, its window
    start and its result; one scan at a time."""

    taken_at: float = -SCAN_TTL_SECONDS
    ttl: float = SCAN_TTL_SECONDS
    since: int = 0
    result: tuple[FleetTenants, list[tuple[str, int]]] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


SCAN_CACHE = web.AppKey("fleet_scan_cache", ScanCache)


async def _cached_scan(
    request: web.Request, since: int
) -> tuple[FleetTenants, list[tuple[str, int]]]:
    cache = request.app[SCAN_CACHE]
    async with cache.lock:  # callers arriving during a scan get its result
        fresh = time.monotonic() - cache.taken_at < cache.ttl
        if cache.result is None or not fresh or cache.since != since:
            began = time.monotonic()
            cache.result = await _scan_tenants(request.app[STORE], since)
            cache.taken_at, cache.since = time.monotonic(), since
            cache.ttl = max(SCAN_TTL_SECONDS, SCAN_TTL_FACTOR * (cache.taken_at - began))
        return cache.result


async def fleet(request: web.Request) -> web.Response:
    """``GET /v1/fleet`` (admin): tenants, BES slots, backlog and runs of the last hours."""
    require_admin(request)
    hours = query_int(request, "hours", 24, 1, 168)
    now = now_ms()
    since = now - now % HOUR_MS - (hours - 1) * HOUR_MS
    tenants, recent = await _cached_scan(request, since)
    services = await _services(request)
    queue = request.app[SETTINGS].redis.queue_name
    redis = request.app[REDIS]
    ready = await reply(redis.zcount(queue, "-inf", now))
    deferred = await reply(redis.zcount(queue, f"({now}", "+inf"))
    waiting = sum(s.waiting_interactive + s.waiting_bulk for s in services)
    overview = FleetOverview(
        generated_at=datetime.now(UTC),
        tenants=tenants,
        services=services,
        backlog=Backlog(ready=int(ready), deferred=int(deferred), waiting_slot=waiting),
        hours=hours,
        runs_by_hour=hourly(recent, now, hours),
        runs_by_state=dict(Counter(state for state, _ in recent)),
    )
    return json_response(overview)


async def list_batches(request: web.Request) -> web.Response:
    """``GET /v1/batches`` (admin): recent bulk retrains with their progress, newest first."""
    require_admin(request)
    limit = query_int(request, "limit", 20, 1, 100)
    store = request.app[STORE]
    ids: list[str] = await store.redis.zrevrange(store.keys.batches, 0, limit - 1)
    items: list[BatchStatus] = []
    for batch_id in ids:
        found = await store.get_batch(batch_id)
        if found is not None:
            items.append(batch_status(*found))
    total = int(await store.redis.zcard(store.keys.batches))
    return json_response(BatchPage(items=items, total=total))


async def batch_runs(request: web.Request) -> web.Response:
    """``GET /v1/batches/{batch_id}/runs`` (admin): a page of the batch's runs with phases."""
    require_admin(request)
    batch_id = request.match_info["batch_id"]
    store = request.app[STORE]
    if not BATCH_ID.fullmatch(batch_id) or await store.get_batch(batch_id) is None:
        raise not_found("batch", batch_id[:80])
    limit = query_int(request, "limit", 500, 1, 2000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    total = int(await reply(store.redis.llen(store.keys.batch_runs(batch_id))))
    runs = await store.get_runs(await store.batch_run_ids(batch_id, offset, limit))
    items = [RunBrief.model_validate(run.model_dump()) for run in runs]
    page = BatchRuns(
        batch_id=batch_id,
        items=items,
        total=total,
        offset=offset,
        limit=limit,
        next_offset=offset + limit if offset + limit < total else None,
    )
    return json_response(page)


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
    app.router.add_get("/ui", ui_index)
    app.router.add_get("/ui/", ui_index)
    app.router.add_static("/ui/", UI_DIR, follow_symlinks=False, append_version=False)
    app.on_response_prepare.append(ui_headers)
