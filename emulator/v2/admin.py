"""Admin routes of the v2 surfaces under ``/_emulator/v2/`` (no auth, like the classic ones).

- ``GET /_emulator/v2/config`` → the v2 workspaces with their ARM ids
- ``GET /_emulator/v2/stats`` → per job name: status, ``jobs_created`` (never above 1),
  ``puts_unchanged``, ``puts_refused``, ``cancels``; totals, faults, calls by kind
  (``job_get``, ``job_list_page``, ``mlflow_call``), the budgets' counters, models (tags and
  their history, versions) and endpoints (state, traffic, deployments, scoring calls)
- ``GET|PUT /_emulator/v2/faults`` → ``{"v2_jobs": {error_rate, error_status, latency_seconds,
  fail_next, commit_then_drop}, "v2_mlflow": {...}, "v2_models": {...}, "v2_endpoints": {...},
  "v2_scoring": {...}, "job_failure_rate", "jobs_log_no_metrics", "deployments_fail_next"}``
  (PUT replaces them all; ``{}`` clears)
- ``GET|PUT /_emulator/v2/throttle`` → the ARM budgets per principal: ``{"enabled", "reads":
  {"capacity", "per_second"}, "writes": ..., "deletes": ...}`` with the calls taken and refused
  (PUT replaces the configuration and refills every bucket)
- ``POST /_emulator/v2/reset`` → no datastores, jobs, models or faults; the configured
  budgets, full
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from emulator.errors import ApiError, read_object
from emulator.state import STATE
from emulator.v2.state import V2_STATE, V2Faults
from emulator.v2.throttle import ThrottleConfig
from emulator.v2.workspace import PROVIDER


async def get_config(request: web.Request) -> web.Response:
    """The v2 workspaces and where they are."""
    arm = request.app[STATE].config.arm
    group = arm.resource_groups[0]
    workspaces = [
        {
            "name": ws.name,
            "location": ws.location,
            "id": f"/subscriptions/{arm.subscription_id}/resourceGroups/{group}"
            f"/providers/{PROVIDER}/workspaces/{ws.name}",
        }
        for ws in request.app[V2_STATE].config.workspaces
    ]
    return web.json_response(
        {"subscription_id": arm.subscription_id, "resource_group": group, "workspaces": workspaces}
    )


async def get_stats(request: web.Request) -> web.Response:
    """Job counters per name."""
    return web.json_response(request.app[V2_STATE].stats())


async def get_faults(request: web.Request) -> web.Response:
    """The v2 fault switches and counters."""
    return web.json_response(request.app[V2_STATE].faults.snapshot())


async def put_faults(request: web.Request) -> web.Response:
    """Replace the v2 fault switches."""
    v2 = request.app[V2_STATE]
    try:
        faults = V2Faults.model_validate(await read_object(request))
    except ValidationError as exc:
        raise ApiError(400, "BadArgument", str(exc), "RequestBodyInvalid") from exc
    v2.faults.configure(faults)
    return web.json_response(v2.faults.snapshot())


async def get_throttle(request: web.Request) -> web.Response:
    """The ARM budgets and their counters."""
    return web.json_response(request.app[V2_STATE].throttle.snapshot())


async def put_throttle(request: web.Request) -> web.Response:
    """Replace the ARM budgets (every bucket starts full)."""
    throttle = request.app[V2_STATE].throttle
    try:
        config = ThrottleConfig.model_validate(await read_object(request))
    except ValidationError as exc:
        raise ApiError(400, "BadArgument", str(exc), "RequestBodyInvalid") from exc
    throttle.configure(config)
    return web.json_response(throttle.snapshot())


async def reset(request: web.Request) -> web.Response:
    """Forget every datastore and job."""
    request.app[V2_STATE].reset()
    return web.json_response({"status": "reset"})


def add_routes(app: web.Application) -> None:
    """Register the v2 admin routes."""
    app.router.add_get("/_emulator/v2/config", get_config)
    app.router.add_get("/_emulator/v2/stats", get_stats)
    app.router.add_get("/_emulator/v2/faults", get_faults)
    app.router.add_put("/_emulator/v2/faults", put_faults)
    app.router.add_get("/_emulator/v2/throttle", get_throttle)
    app.router.add_put("/_emulator/v2/throttle", put_throttle)
    app.router.add_post("/_emulator/v2/reset", reset)
