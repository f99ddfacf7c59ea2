"""Admin API under ``/_emulator/``: config, stats, reset, faults, settings, initial models.

- ``GET /_emulator/health`` → ``{"status": "ok"}``
- ``GET /_emulator/config`` → the effective config (secrets included) plus ``public_url``/``seed``
- ``GET /_emulator/stats`` → counters (see ``EmulatorState.stats``)
- ``POST /_emulator/reset`` → back to the config: no jobs, added endpoints or new services
- ``GET|PUT /_emulator/faults`` → fault switches (PUT replaces them all; ``{}`` clears)
- ``GET|PUT /_emulator/settings`` → ``min_job_seconds``, ``instant``,
  ``provisioning_delay_seconds``, ``sas_ttl_seconds``, ``job_durations`` (per-job training
  durations, ``emulator/durations.py``; ``null`` turns them off) (PUT merges the given fields)
- ``GET /_emulator/models/{spec}.ilearner`` → the initial model of a spec (no auth)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from emulator.arm import install_configured_services
from emulator.config import FaultsConfig, RuntimeSettings
from emulator.errors import ApiError, read_object
from emulator.state import STATE, EmulatorState


def effective_config(state: EmulatorState) -> dict[str, Any]:
    """The config as loaded, with the live settings and faults, and where it is served."""
    doc = state.config.model_dump(mode="json")
    doc["settings"] = state.settings.model_dump(mode="json")
    doc["faults"] = state.faults.config.model_dump(mode="json")
    doc["public_url"] = state.base_url
    doc["seed"] = state.seed
    return doc


def _invalid(exc: ValidationError) -> ApiError:
    return ApiError(400, "BadArgument", str(exc), "RequestBodyInvalid")


async def health(request: web.Request) -> web.Response:
    """Liveness."""
    return web.json_response({"status": "ok"})


async def get_config(request: web.Request) -> web.Response:
    """The effective config."""
    return web.json_response(effective_config(request.app[STATE]))


async def get_stats(request: web.Request) -> web.Response:
    """Counters of jobs, patches, ARM PUTs, RRS calls and faults."""
    return web.json_response(request.app[STATE].stats())


async def reset(request: web.Request) -> web.Response:
    """Drop all run-time state and go back to the config."""
    state = request.app[STATE]
    await state.reset()
    install_configured_services(state)
    return web.json_response({"status": "reset"})


async def get_faults(request: web.Request) -> web.Response:
    """Fault switches, remaining counters and injected counts."""
    return web.json_response(request.app[STATE].faults.snapshot())


async def put_faults(request: web.Request) -> web.Response:
    """Replace the fault switches."""
    state = request.app[STATE]
    try:
        config = FaultsConfig.model_validate(await read_object(request))
    except ValidationError as exc:
        raise _invalid(exc) from exc
    state.faults.configure(config)
    return web.json_response(state.faults.snapshot())


async def get_settings(request: web.Request) -> web.Response:
    """The run-time settings."""
    return web.json_response(request.app[STATE].settings.model_dump(mode="json"))


async def put_settings(request: web.Request) -> web.Response:
    """Merge the given run-time settings."""
    state = request.app[STATE]
    merged = {**state.settings.model_dump(), **(await read_object(request))}
    try:
        state.settings = RuntimeSettings.model_validate(merged)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return web.json_response(state.settings.model_dump(mode="json"))


async def get_model(request: web.Request) -> web.Response:
    """An initial model as ``.ilearner`` JSON."""
    name = request.match_info["name"].removesuffix(".ilearner")
    model = request.app[STATE].initial_models.get(name)
    if model is None:
        raise ApiError(404, "NotFound", f"No initial model {name!r}.", "BlobNotFound")
    return web.Response(body=model.to_json(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Register the admin routes."""
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_get("/_emulator/stats", get_stats)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_put("/_emulator/faults", put_faults)
    app.router.add_get("/_emulator/settings", get_settings)
    app.router.add_put("/_emulator/settings", put_settings)
    app.router.add_get("/_emulator/models/{name}", get_model)
