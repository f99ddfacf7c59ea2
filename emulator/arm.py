"""ARM ``Microsoft.MachineLearning/webServices`` (PROTOCOL.md §6): new web services.

PUT creates (201) or updates (200) a service and starts provisioning: after
``provisioning_delay_seconds`` the trained-model asset (``locationInfo.uri`` plus a SAS in
``locationInfo.credentials`` or in the uri) is downloaded; the service then is ``Succeeded``
and scores with it, or ``Failed`` and keeps its previous model. Each service has its own
runtime base (``swaggerLocation`` without ``/swagger.json``) keyed by ``listKeys``.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from typing import Any

import structlog
from aiohttp import web

from emulator.bes import reply
from emulator.blobio import BlobError, BlobStore
from emulator.config import ArmWebServiceConfig, derived_id, derived_key
from emulator.errors import ApiError, read_object
from emulator.state import (
    BLOBS,
    STATE,
    ArmService,
    EmulatorState,
    JobCounters,
    Operation,
    Runtime,
    bearer_matches,
    iso,
    unserved_message,
    utcnow,
)
from emulator.training import Model, ModelSpec, TrainingError, input_columns

log = structlog.get_logger("emulator.arm")

API_VERSIONS = ("2017-01-01", "2016-05-01-preview")
PROVIDER = "providers/Microsoft.MachineLearning"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PATCHABLE = {"assets", "packageType"}


def _error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message)


def arm_id(service: ArmService) -> str:
    """The ARM resource id of a service."""
    return (
        f"/subscriptions/{service.subscription_id}/resourceGroups/{service.resource_group}"
        f"/{PROVIDER}/webServices/{service.name}"
    )


def swagger_location(state: EmulatorState, service: ArmService) -> str:
    """``swaggerLocation``: the runtime base of the service plus ``/swagger.json``."""
    base = f"{state.base_url}/subscriptions/{service.subscription_id}"
    return f"{base}/services/{service.service_id}/swagger.json"


def service_json(state: EmulatorState, service: ArmService) -> dict[str, Any]:
    """A WebService resource as GET answers it (no keys, no storage account key)."""
    props = copy.deepcopy(service.properties)
    props.pop("keys", None)
    if isinstance(props.get("storageAccount"), dict):
        props["storageAccount"]["key"] = None
    props["provisioningState"] = service.provisioning_state
    props["swaggerLocation"] = swagger_location(state, service)
    props["createdOn"] = iso(service.created)
    return {
        "id": arm_id(service),
        "name": service.name,
        "location": service.location,
        "type": "Microsoft.MachineLearning/webServices",
        "tags": service.tags,
        "properties": props,
    }


def template_properties(state: EmulatorState, cfg: ArmWebServiceConfig) -> dict[str, Any]:
    """Properties of a configured service, with the initial model as its asset."""
    spec = state.config.spec(cfg.model)
    sub, group = state.config.arm.subscription_id, state.config.arm.resource_groups[0]
    columns = {c: {"type": "string"} for c in input_columns(spec.features)}
    return {
        "title": cfg.title,
        "description": cfg.description,
        "packageType": "Graph",
        "readOnly": False,
        "storageAccount": {"name": "devstoreaccount1", "key": None},
        "machineLearningWorkspace": {
            "id": state.config.workspaces[0].id if state.config.workspaces else ""
        },
        "commitmentPlan": {
            "id": f"/subscriptions/{sub}/resourceGroups/{group}/{PROVIDER}/commitmentPlans/retrainq"
        },
        "realtimeConfiguration": {"maxConcurrentCalls": 20},
        "input": {
            "type": "object",
            "properties": {"input1": {"type": "object", "properties": columns}},
        },
        "output": {"type": "object", "properties": {"output1": {"type": "object"}}},
        "assets": {
            "asset1": {
                "name": spec.resource_name,
                "type": "Resource",
                "locationInfo": {"uri": f"{state.base_url}/_emulator/models/{spec.name}.ilearner"},
            }
        },
        "parameters": {},
        "package": {"nodes": {"node1": {"assetId": "asset1"}}, "edges": [], "graphParameters": {}},
    }


def _new_service(
    state: EmulatorState,
    group: str,
    name: str,
    location: str,
    spec: ModelSpec,
    keys: tuple[str, str],
) -> ArmService:
    sub = state.config.arm.subscription_id
    service = ArmService(
        subscription_id=sub,
        resource_group=group,
        name=name,
        service_id=derived_id(f"arm/{sub}/{group.lower()}/{name.lower()}"),
        location=location,
        tags={},
        properties={},
        runtime=Runtime(
            label=f"arm:{group}/{name}",
            kind="predictive",
            keys=keys,
            spec=spec,
            model=None,
            jobs=JobCounters(),
            max_concurrent_jobs=40,
            max_concurrent_calls=20,
            data_uri_parameters=["URI", "Data URI"],
            slots=asyncio.Semaphore(40),
        ),
    )
    state.arm_services[(group.lower(), name.lower())] = service
    state.arm_by_service_id[service.service_id] = service
    return service


def install_configured_services(state: EmulatorState) -> None:
    """Create the config's services (templates), provisioned with the initial models."""
    arm = state.config.arm
    for cfg in arm.web_services:
        spec = state.config.spec(cfg.model)
        service = _new_service(
            state,
            arm.resource_groups[0],
            cfg.name,
            arm.location,
            spec,
            (cfg.primary_key, cfg.secondary_key),
        )
        service.properties = template_properties(state, cfg)
        service.runtime.model = state.initial_models.get(spec.name)
        if service.runtime.model is None:
            service.runtime.unserved = unserved_message(spec, f"arm:{service.name}")


def _check(request: web.Request) -> EmulatorState:
    state = request.app[STATE]
    version = request.query.get("api-version")
    if version is None:
        raise _error(
            400, "MissingApiVersionParameter", "The api-version query parameter is required."
        )
    if version not in API_VERSIONS:
        raise _error(
            400, "InvalidApiVersionParameter", f"api-version must be one of {API_VERSIONS}."
        )
    if not bearer_matches(request.headers.get("Authorization"), state.config.arm.token):
        raise _error(
            401, "AuthenticationFailed", "Authentication failed: the bearer token is invalid."
        )
    if request.match_info["subscription_id"].lower() != state.config.arm.subscription_id.lower():
        raise _error(404, "SubscriptionNotFound", "The subscription was not found.")
    group = request.match_info.get("resource_group")
    if group is not None and group.lower() not in {
        g.lower() for g in state.config.arm.resource_groups
    }:
        raise _error(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
    return state


async def _guard(request: web.Request) -> EmulatorState:
    await request.app[STATE].faults.before("arm")
    return _check(request)


def _find(state: EmulatorState, request: web.Request) -> ArmService:
    key = (request.match_info["resource_group"].lower(), request.match_info["name"].lower())
    service = state.arm_services.get(key)
    if service is None:
        raise _error(
            404, "ResourceNotFound", f"Web service '{request.match_info['name']}' was not found."
        )
    return service


def trained_model_asset(properties: dict[str, Any]) -> tuple[str, str]:
    """(asset name, download URL with SAS) of the ``[trained model]`` Resource asset."""
    assets = properties.get("assets")
    if not isinstance(assets, dict):
        raise _error(400, "BadRequest", "properties.assets must be an object.")
    found = [
        a
        for a in assets.values()
        if isinstance(a, dict)
        and a.get("type") == "Resource"
        and str(a.get("name", "")).endswith("[trained model]")
    ]
    if len(found) != 1:
        raise _error(
            400, "BadRequest", "The service needs exactly one '[trained model]' Resource asset."
        )
    info = found[0].get("locationInfo")
    if not isinstance(info, dict) or not isinstance(info.get("uri"), str) or not info["uri"]:
        raise _error(400, "BadRequest", "The trained model asset needs locationInfo.uri.")
    url = info["uri"]
    credentials = info.get("credentials")
    if isinstance(credentials, str) and credentials.strip("?&"):
        url += ("&" if "?" in url else "?") + credentials.lstrip("?&")
    return str(found[0]["name"]), url


def _spec_for(state: EmulatorState, asset_name: str) -> ModelSpec:
    for spec in state.config.models:
        if spec.resource_name == asset_name:
            return spec
    raise _error(400, "BadRequest", f"Unknown trained model resource {asset_name!r}.")


def _provision(state: EmulatorState, blobs: BlobStore, service: ArmService, url: str) -> Operation:
    if service.task is not None and not service.task.done():
        service.task.cancel()
        if service.operation is not None:
            service.operation.status = "Canceled"
    operation = Operation(id=uuid.uuid4().hex)
    state.operations[operation.id] = operation
    service.operation = operation
    service.provisioning_state = "Provisioning"
    service.task = state.spawn(_settle(state, blobs, service, operation, url))
    return operation


async def _settle(
    state: EmulatorState, blobs: BlobStore, service: ArmService, operation: Operation, url: str
) -> None:
    await asyncio.sleep(state.settings.provisioning_delay_seconds)
    try:
        model = Model.from_json(await blobs.fetch_url(url))
        if not model.fits(service.runtime.spec):
            raise TrainingError("the trained model does not match the web service's schema")
    except (BlobError, TrainingError) as exc:
        code = exc.code if isinstance(exc, BlobError) else "InvalidTrainedModel"
        service.provisioning_state = "Failed"
        operation.status = "Failed"
        operation.error = {"code": code, "message": f"Loading the trained model failed: {exc}"}
        log.info("arm.provisioning_failed", service=service.name, error=str(exc))
    else:
        service.runtime.model = model
        service.provisioning_state = "Succeeded"
        operation.status = "Succeeded"
        log.info("arm.provisioned", service=service.name)
    operation.end = utcnow()


def _async_headers(state: EmulatorState, operation: Operation) -> dict[str, str]:
    sub = state.config.arm.subscription_id
    url = (
        f"{state.base_url}/subscriptions/{sub}/{PROVIDER}/operationsStatus/{operation.id}"
        "?api-version=2017-01-01"
    )
    return {"Azure-AsyncOperation": url, "Location": url}


async def put_service(request: web.Request) -> web.Response:
    """PUT: create (201) or replace (200) a web service; provisioning runs in the background."""
    state = await _guard(request)
    group, name = request.match_info["resource_group"], request.match_info["name"]
    if not NAME.match(name):
        raise _error(400, "InvalidResourceName", f"'{name}' is not a valid web service name.")
    body = await read_object(request)
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _error(400, "BadRequest", "The body needs a properties object.")
    asset_name, url = trained_model_asset(properties)
    spec = _spec_for(state, asset_name)
    service = state.arm_services.get((group.lower(), name.lower()))
    created = service is None
    raw_keys = properties.get("keys")
    given: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
    if service is None:
        qualified = f"arm/{group.lower()}/{name.lower()}"
        keys = (
            str(given.get("primary") or derived_key(f"{qualified}/primary")),
            str(given.get("secondary") or derived_key(f"{qualified}/secondary")),
        )
        location = str(body.get("location") or state.config.arm.location)
        service = _new_service(state, group, name, location, spec, keys)
    elif service.runtime.spec.name != spec.name:
        raise _error(400, "BadRequest", "The trained model resource cannot change kind.")
    elif given:
        service.runtime.keys = (
            str(given.get("primary") or service.runtime.keys[0]),
            str(given.get("secondary") or service.runtime.keys[1]),
        )
    stored = copy.deepcopy(properties)
    for computed in ("keys", "provisioningState", "swaggerLocation", "createdOn"):
        stored.pop(computed, None)
    service.properties = stored
    tags = body.get("tags")
    service.tags = tags if isinstance(tags, dict) else {}
    service.puts += 1
    operation = _provision(state, request.app[BLOBS], service, url)
    log.info("arm.put", service=name, created=created)
    response = web.json_response(
        service_json(state, service),
        status=201 if created else 200,
        headers=_async_headers(state, operation),
    )
    return reply(request, "arm", response)


async def patch_service(request: web.Request) -> web.Response:
    """PATCH: only ``properties.assets`` (and ``tags``) may change; re-provisions."""
    state = await _guard(request)
    service = _find(state, request)
    body = await read_object(request)
    properties = body.get("properties", {})
    if (
        not body.keys() <= {"properties", "tags"}
        or not isinstance(properties, dict)
        or not properties.keys() <= PATCHABLE
    ):
        raise _error(400, "BadRequest", "Only properties.assets and tags can be patched.")
    assets = properties.get("assets")
    if assets is not None and not isinstance(assets, dict):
        raise _error(400, "BadRequest", "properties.assets must be an object.")
    merged = copy.deepcopy(service.properties)
    merged.setdefault("assets", {}).update(copy.deepcopy(assets or {}))
    asset_name, url = trained_model_asset(merged)
    if _spec_for(state, asset_name).name != service.runtime.spec.name:
        raise _error(400, "BadRequest", "The trained model resource cannot change kind.")
    service.properties = merged
    if isinstance(body.get("tags"), dict):
        service.tags.update(body["tags"])
    service.patches += 1
    operation = _provision(state, request.app[BLOBS], service, url)
    response = web.json_response(
        service_json(state, service), headers=_async_headers(state, operation)
    )
    return reply(request, "arm", response)


async def get_service(request: web.Request) -> web.Response:
    """GET one web service."""
    state = await _guard(request)
    return web.json_response(service_json(state, _find(state, request)))


async def delete_service(request: web.Request) -> web.Response:
    """DELETE: 200 when it existed, 204 when there was nothing to delete."""
    state = await _guard(request)
    key = (request.match_info["resource_group"].lower(), request.match_info["name"].lower())
    service = state.arm_services.pop(key, None)
    if service is None:
        return reply(request, "arm", web.Response(status=204))
    state.arm_by_service_id.pop(service.service_id, None)
    if service.task is not None:
        service.task.cancel()
    return reply(request, "arm", web.Response(status=200))


async def list_keys(request: web.Request) -> web.Response:
    """GET (or POST) listKeys: the runtime keys."""
    state = await _guard(request)
    primary, secondary = _find(state, request).runtime.keys
    return web.json_response({"primary": primary, "secondary": secondary})


async def list_services(request: web.Request) -> web.Response:
    """GET the services of a resource group (or of the subscription)."""
    state = await _guard(request)
    group = request.match_info.get("resource_group")
    value = [
        service_json(state, s)
        for s in state.arm_services.values()
        if group is None or s.resource_group.lower() == group.lower()
    ]
    return web.json_response({"value": value, "nextLink": None})


async def operation_status(request: web.Request) -> web.Response:
    """GET an Azure-AsyncOperation URL: InProgress, Succeeded or Failed (with error)."""
    state = await _guard(request)
    operation = state.operations.get(request.match_info["operation_id"])
    if operation is None:
        raise _error(404, "ResourceNotFound", "The operation was not found.")
    body: dict[str, Any] = {
        "id": request.path,
        "name": operation.id,
        "status": operation.status,
        "startTime": iso(operation.start),
        "endTime": iso(operation.end) if operation.end else None,
    }
    if operation.error:
        body["error"] = operation.error
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    """Register the ARM routes."""
    sub = "/subscriptions/{subscription_id}"
    group = sub + "/resourceGroups/{resource_group}/" + PROVIDER + "/webServices"
    one = group + "/{name}"
    app.router.add_get(group, list_services)
    app.router.add_get(sub + "/" + PROVIDER + "/webServices", list_services)
    app.router.add_get(one, get_service)
    app.router.add_put(one, put_service)
    app.router.add_patch(one, patch_service)
    app.router.add_delete(one, delete_service)
    app.router.add_get(one + "/listKeys", list_keys)
    app.router.add_post(one + "/listKeys", list_keys)
    app.router.add_get(sub + "/" + PROVIDER + "/operationsStatus/{operation_id}", operation_status)
