"""Schedule routes: fleet-wide recurring retrains (tenant schedules live on the tenant)."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from producer.api.auth import require_admin
from producer.api.http import json_response, read_body
from producer.api.problems import Problem, not_found
from producer.api.state import SCHEDULES, SETTINGS
from producer.schemas import ScheduleBody, SchedulePage, ScheduleView
from worker.cron import check_interval
from worker.schedules import Schedule

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _view(schedule: Schedule, upcoming: datetime) -> ScheduleView:
    return ScheduleView(**schedule.model_dump(), next_fire_at=upcoming)


def _name(request: web.Request, *, writing: bool) -> str:
    """The schedule name of the path; 422 when malformed, or when writing a tenant's own
    schedule (``tenant-{id}``), which is read here but set and removed on the tenant."""
    name = request.match_info["name"]
    if not NAME.fullmatch(name):
        raise Problem(
            422,
            "Unprocessable Content",
            "name: 1-63 lowercase letters, digits and hyphens",
        )
    if writing and name.startswith("tenant-"):
        tenant_id = name.removeprefix("tenant-")
        raise Problem(
            422,
            "Unprocessable Content",
            f"'{name}' is tenant {tenant_id}'s own schedule: set or clear it with "
            f"'retrainq tenants patch {tenant_id} --schedule ...' "
            f"(PATCH /v1/tenants/{tenant_id}); fleet schedule names may not start with 'tenant-'",
        )
    return name


async def list_schedules(request: web.Request) -> web.Response:
    """``GET /v1/schedules``: every schedule (fleet and tenant), soonest first."""
    require_admin(request)
    found = await request.app[SCHEDULES].list(0, 1000)
    return json_response(SchedulePage(items=[_view(s, at) for s, at in found]))


async def get_schedule(request: web.Request) -> web.Response:
    """``GET /v1/schedules/{name}``."""
    require_admin(request)
    name = _name(request, writing=False)
    found = await request.app[SCHEDULES].find(name)
    if found is None:
        raise not_found("schedule", name)
    return json_response(_view(*found))


async def put_schedule(request: web.Request) -> web.Response:
    """``PUT /v1/schedules/{name}``: create or replace a fleet-wide schedule."""
    require_admin(request)
    name = _name(request, writing=True)
    body = await read_body(request, ScheduleBody)
    try:
        check_interval(body.cron, request.app[SETTINGS].min_fleet_schedule_seconds)
    except ValueError as exc:
        raise Problem(422, "Unprocessable Content", f"cron: {exc}") from None
    schedule = Schedule(name=name, cron=body.cron, kind="fleet", target_kind=body.target_kind)
    upcoming = await request.app[SCHEDULES].put(schedule)
    return json_response(_view(schedule, upcoming))


async def delete_schedule(request: web.Request) -> web.Response:
    """``DELETE /v1/schedules/{name}``: stop a fleet-wide schedule."""
    require_admin(request)
    name = _name(request, writing=True)
    if not await request.app[SCHEDULES].delete(name):
        raise not_found("schedule", name)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    """Register the schedule routes."""
    app.router.add_get("/v1/schedules", list_schedules)
    app.router.add_get("/v1/schedules/{name}", get_schedule)
    app.router.add_put("/v1/schedules/{name}", put_schedule)
    app.router.add_delete("/v1/schedules/{name}", delete_schedule)
