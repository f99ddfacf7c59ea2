"""Classic web service management (PROTOCOL.md §5): services, endpoints, PUT/PATCH/refresh/DELETE.

Auth is the workspace authorization token, or an endpoint's own key for calls on that
endpoint. PATCH downloads the model from ``BaseLocation + RelativeLocation + SasBlobToken``;
when that fails the endpoint keeps its old model and the call answers 400.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import web

from emulator.bes import reply
from emulator.blobio import BlobError, location_url
from emulator.config import EndpointConfig, derived_key
from emulator.errors import ApiError, bad_argument, not_found, read_json, read_object, unauthorized
from emulator.state import (
    BLOBS,
    STATE,
    EmulatorState,
    Endpoint,
    WebService,
    Workspace,
    bearer_matches,
    iso,
)
from emulator.training import Model, TrainingError

log = structlog.get_logger("emulator.management")

ENDPOINT_NAME = re.compile(r"^[a-z0-9]{1,24}$")


def service_json(service: WebService) -> dict[str, Any]:
    """A web service as the management API shows it."""
    return {
        "Id": service.id,
        "Name": service.name,
        "Description": "",
        "CreationTime": iso(service.created),
        "WorkspaceId": service.workspace.id,
        "DefaultEndpointName": "default",
        "EndpointCount": len(service.endpoints),
    }


def endpoint_json(state: EmulatorState, endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the management API shows it (keys included)."""
    service = endpoint.service
    api = f"{state.base_url}/workspaces/{service.workspace.id}/services/{endpoint.id}"
    resources = []
    if service.kind == "predictive":
        resources.append(
            {
                "Name": service.spec.resource_name,
                "Kind": "TrainedModel",
                "Location": endpoint.resource_location,
            }
        )
    return {
        "Name": endpoint.name,
        "Id": endpoint.id,
        "Description": endpoint.description,
        "CreationTime": iso(endpoint.created),
        "WebServiceId": service.id,
        "WorkspaceId": service.workspace.id,
        "HelpLocation": f"{api}/help",
        "PrimaryKey": endpoint.primary_key,
        "SecondaryKey": endpoint.secondary_key,
        "ApiLocation": api,
        "Version": "2014-09-01",
        "MaxConcurrentCalls": endpoint.max_concurrent_calls,
        "ThrottleLevel": endpoint.throttle_level,
        "DiagnosticsTraceLevel": "None",
        "Resources": resources,
    }


async def _resolve(
    request: web.Request, *, endpoint_scoped: bool = False
) -> tuple[Workspace, WebService | None, Endpoint | None]:
    """Workspace, service and endpoint of the path, with faults and auth applied."""
    state = request.app[STATE]
    await state.faults.before("management")
    match = request.match_info
    workspace = state.workspaces.get(match["workspace_id"].lower())
    if workspace is None:
        raise not_found("The workspace was not found.", "WorkspaceNotFound")
    service = workspace.services.get(match["service_id"].lower()) if "service_id" in match else None
    endpoint = service.endpoints.get(match["name"]) if service and "name" in match else None
    header = request.headers.get("Authorization")
    if not any(bearer_matches(header, token) for token in workspace.tokens):
        keys = (endpoint.primary_key, endpoint.secondary_key) if endpoint else ()
        if not (endpoint_scoped and any(bearer_matches(header, k) for k in keys)):
            raise unauthorized()
    if "service_id" in match and service is None:
        raise not_found(f"Web service '{match['service_id']}' was not found.", "WebServiceNotFound")
    return workspace, service, endpoint


def _existing(service: WebService | None, endpoint: Endpoint | None, name: str) -> Endpoint:
    if service is None or endpoint is None:
        raise not_found(f"Endpoint '{name}' was not found.", "EndpointNotFound")
    return endpoint


async def list_services(request: web.Request) -> web.Response:
    """GET webservices."""
    workspace, _, _ = await _resolve(request)
    return web.json_response([service_json(s) for s in workspace.services.values()])


async def get_service(request: web.Request) -> web.Response:
    """GET webservices/{id}."""
    _, service, _ = await _resolve(request)
    assert service is not None
    return web.json_response(service_json(service))


async def list_endpoints(request: web.Request) -> web.Response:
    """GET webservices/{id}/endpoints."""
    _, service, _ = await _resolve(request)
    assert service is not None
    state = request.app[STATE]
    return web.json_response([endpoint_json(state, e) for e in service.endpoints.values()])


async def get_endpoint(request: web.Request) -> web.Response:
    """GET webservices/{id}/endpoints/{name}."""
    _, service, endpoint = await _resolve(request, endpoint_scoped=True)
    found = _existing(service, endpoint, request.match_info["name"])
    return web.json_response(endpoint_json(request.app[STATE], found))


def _put_settings(body: dict[str, Any]) -> tuple[str, str, int]:
    description = body.get("Description", "") or ""
    throttle = body.get("ThrottleLevel", "High") or "High"
    calls = body.get("MaxConcurrentCalls", 20)
    if not isinstance(description, str) or len(description) > 1024:
        raise bad_argument("InvalidDescription", "Description must be a string of at most 1024.")
    if throttle not in ("High", "Low"):
        raise bad_argument("InvalidThrottleLevel", "ThrottleLevel must be 'High' or 'Low'.")
    if isinstance(calls, str) and calls.isdigit():
        calls = int(calls)
    if not isinstance(calls, int) or isinstance(calls, bool) or not 1 <= calls <= 200:
        raise bad_argument("InvalidMaxConcurrentCalls", "MaxConcurrentCalls must be 1 to 200.")
    return description, throttle, 4 if throttle == "Low" else calls


async def put_endpoint(request: web.Request) -> web.Response:
    """PUT webservices/{id}/endpoints/{name}: add an endpoint (re-PUT updates settings)."""
    state = request.app[STATE]
    _, service, endpoint = await _resolve(request)
    assert service is not None
    name = request.match_info["name"]
    if not ENDPOINT_NAME.match(name):
        raise bad_argument(
            "InvalidEndpointName", "Endpoint names are 1 to 24 lowercase letters and digits."
        )
    raw = await read_json(request) if request.can_read_body else {}
    if not isinstance(raw, dict):
        raise bad_argument("RequestBodyInvalid", "The request body must be a JSON object.")
    description, throttle, calls = _put_settings(raw)
    if endpoint is None:
        if len(service.endpoints) >= service.max_endpoints:
            raise bad_argument(
                "EndpointLimitReached",
                f"The web service already has {service.max_endpoints} endpoints.",
            )
        qualified = f"{service.name}/{name}"
        endpoint = state.add_endpoint(
            service,
            EndpointConfig(
                name=name,
                id=state.endpoint_id_for(service, name),
                primary_key=derived_key(f"{qualified}/primary"),
                secondary_key=derived_key(f"{qualified}/secondary"),
                description=description,
                throttle_level="Low" if throttle == "Low" else "High",
                max_concurrent_calls=calls,
            ),
        )
        log.info("management.endpoint_added", service=service.name, endpoint=name)
    else:
        endpoint.description = description
        endpoint.throttle_level = throttle
        endpoint.runtime.max_concurrent_calls = calls
    return reply(request, "management", web.json_response(endpoint_json(state, endpoint)))


def _resource_location(body: dict[str, Any], service: WebService) -> dict[str, str]:
    resources = body.get("Resources")
    if not isinstance(resources, list) or not resources:
        raise bad_argument("RequestBodyInvalid", "Resources must be a non-empty list.")
    if len(resources) != 1:
        raise bad_argument("InvalidResources", "This web service has one updatable resource.")
    resource = resources[0]
    if not isinstance(resource, dict) or not isinstance(resource.get("Location"), dict):
        raise bad_argument("RequestBodyInvalid", "A resource has a Name and a Location object.")
    if resource.get("Name") != service.spec.resource_name:
        raise bad_argument(
            "ResourceNotFound",
            f"No resource named {resource.get('Name')!r}; "
            f"this web service has {service.spec.resource_name!r}.",
        )
    location = resource["Location"]
    fields = ("BaseLocation", "RelativeLocation", "SasBlobToken")
    if not isinstance(location.get("BaseLocation"), str) or not isinstance(
        location.get("RelativeLocation"), str
    ):
        raise bad_argument(
            "InvalidResourceLocation", "Location needs BaseLocation and RelativeLocation."
        )
    return {f: str(location.get(f) or "") for f in fields}


async def patch_endpoint(request: web.Request) -> web.Response:
    """PATCH webservices/{id}/endpoints/{name}: load a new trained model from blob storage."""
    _, service, endpoint = await _resolve(request, endpoint_scoped=True)
    found = _existing(service, endpoint, request.match_info["name"])
    if found.service.kind != "predictive":
        raise bad_argument("NoUpdatableResources", "This web service has no updatable resources.")
    if found.name == "default":
        raise bad_argument("CannotUpdateDefaultEndpoint", "The default endpoint cannot be updated.")
    location = _resource_location(await read_object(request), found.service)
    url = location_url(
        location["BaseLocation"], location["RelativeLocation"], location["SasBlobToken"]
    )
    model = await load_model(request, url, found.service.spec.name)
    if not model.fits(found.service.spec):
        raise bad_argument(
            "InvalidTrainedModel", "The trained model does not match this web service's schema."
        )
    found.runtime.model = model
    found.resource_location = location
    found.patches += 1
    log.info("management.endpoint_patched", service=found.service.name, endpoint=found.name)
    return reply(request, "management", web.Response(status=200))


async def load_model(request: web.Request, url: str, spec_name: str) -> Model:
    """Download and parse an ``.ilearner``; 400 when it cannot be read or parsed."""
    try:
        data = await request.app[BLOBS].fetch_url(url)
        return Model.from_json(data)
    except BlobError as exc:
        raise bad_argument(
            "InvalidResourceLocation", f"The trained model cannot be read: {exc}"
        ) from exc
    except TrainingError as exc:
        raise bad_argument("InvalidTrainedModel", f"{spec_name}: {exc}") from exc


async def refresh_endpoint(request: web.Request) -> web.Response:
    """POST .../refresh: with OverwriteResources, take the default endpoint's model."""
    _, service, endpoint = await _resolve(request, endpoint_scoped=True)
    found = _existing(service, endpoint, request.match_info["name"])
    if found.name == "default":
        raise bad_argument(
            "CannotUpdateDefaultEndpoint", "The default endpoint cannot be refreshed."
        )
    body = await read_object(request) if request.can_read_body else {}
    overwrite = str(body.get("OverwriteResources", "False")).lower() == "true"
    default = found.service.endpoints["default"]
    if overwrite:
        found.runtime.model = default.runtime.model
        found.resource_location = dict(default.resource_location or {}) or None
    found.refreshes += 1
    return reply(request, "management", web.Response(status=200))


async def delete_endpoint(request: web.Request) -> web.Response:
    """DELETE webservices/{id}/endpoints/{name} (the default endpoint cannot be deleted)."""
    _, service, endpoint = await _resolve(request)
    found = _existing(service, endpoint, request.match_info["name"])
    if found.name == "default":
        raise ApiError(
            400,
            "BadArgument",
            "The default endpoint cannot be deleted.",
            "CannotDeleteDefaultEndpoint",
        )
    request.app[STATE].remove_endpoint(found)
    log.info("management.endpoint_deleted", service=found.service.name, endpoint=found.name)
    return reply(request, "management", web.Response(status=200))


def add_routes(app: web.Application) -> None:
    """Register the management routes."""
    base = "/workspaces/{workspace_id}/webservices"
    one = base + "/{service_id}/endpoints/{name}"
    app.router.add_get(base, list_services)
    app.router.add_get(base + "/{service_id}", get_service)
    app.router.add_get(base + "/{service_id}/endpoints", list_endpoints)
    app.router.add_get(one, get_endpoint)
    app.router.add_put(one, put_endpoint)
    app.router.add_patch(one, patch_endpoint)
    app.router.add_delete(one, delete_endpoint)
    app.router.add_post(one + "/refresh", refresh_endpoint)
