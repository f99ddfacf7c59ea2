"""Managed online endpoints and deployments (shared/PROTOCOL-V2 §4.1-4.2, §4.5, §8).

Endpoint PUT creates (201 + ``Azure-AsyncOperation``; ``Creating`` until the provisioning
delay has passed) or updates (200); PATCH changes tags, traffic or mirror traffic (202 +
``Location`` + ``Retry-After``); DELETE takes its deployments with it (202 + ``Location``).
Deployment PUT creates or updates (201 + ``Azure-AsyncOperation``; ``Creating``/``Updating``,
then ``Succeeded``, or ``Failed`` for the next ``deployments_fail_next`` PUTs). A write to an
endpoint while an operation on it runs answers 409 ``Conflict``. Traffic rules answer 400
``BadArgument``: weights sum to 0 or 100, name existing deployments, a deployment with live
traffic is not deleted, mirror traffic goes to one deployment, at most 50 %, not one with
live traffic. Quotas answer 400 ``OutOfQuota`` on the PUT: ``max_endpoints`` (100),
``max_deployments`` (500) and ``max_deployments_per_endpoint`` (20). ``listKeys`` gives the
endpoint's keys, ``token`` an AML token. The ``v2_endpoints`` fault switch fails or slows
these calls; ``commit_then_drop`` drops a PUT's reply after its effect.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web

from emulator.errors import ApiError, read_object
from emulator.faults import drop_connection
from emulator.state import STATE, EmulatorState, iso, utcnow
from emulator.v2.state import (
    V2_STATE,
    LongOperation,
    OnlineDeployment,
    OnlineEndpoint,
    V2State,
)
from emulator.v2.workspace import PROVIDER, WORKSPACE_PATH, checked, workspace_id

_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|-(?!-)){1,30}[A-Za-z0-9]$")
AUTH_MODES = {"key": "Key", "amltoken": "AMLToken", "aadtoken": "AADToken"}
STATUS_PATH = (
    f"/subscriptions/{{subscription_id}}/providers/{PROVIDER}"
    "/locations/{location}/mfeOperationsStatus/{operation_id}"
)


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadArgument", message)


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise _bad(
            f"Invalid {what} name '{value}': 3-32 characters, a letter first, letters, digits "
            "and single dashes."
        )
    return value


async def _checked(request: web.Request) -> tuple[V2State, str, str]:
    v2 = request.app[V2_STATE]
    await v2.faults.endpoints.before()
    _, workspace = checked(request)
    return v2, workspace.name, workspace.location


def _reply(v2: V2State, request: web.Request, response: web.Response) -> web.Response:
    if request.method in ("PUT", "PATCH") and v2.faults.endpoints.take_drop():
        drop_connection(request)
    return response


def _operation(
    request: web.Request, v2: V2State, location: str, run: Any = None
) -> tuple[LongOperation, dict[str, str]]:
    """A new operation and the headers naming it (status URL and ``Location``)."""
    operation = LongOperation(uuid.uuid4().hex)
    v2.lros[operation.id] = operation
    base = (
        f"{request.app[STATE].base_url}/subscriptions/{request.match_info['subscription_id']}"
        f"/providers/{PROVIDER}/locations/{location}"
    )
    query = f"api-version={request.query['api-version']}"
    headers = {
        "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{operation.id}?{query}",
        "Location": f"{base}/mfeOperationResults/{operation.id}?{query}",
        "Retry-After": "1",
        "x-ms-async-operation-timeout": "PT1H",
    }
    if run is None:
        operation.status = "Succeeded"
    else:
        request.app[STATE].spawn(run(operation))
    return operation, headers


def endpoint_json(request: web.Request, endpoint: OnlineEndpoint) -> dict[str, Any]:
    """An online endpoint resource, with its scoring URI on this emulator."""
    body = copy.deepcopy(endpoint.body)
    props = body["properties"]
    base = request.app[STATE].base_url
    props.update(
        {
            "provisioningState": endpoint.state,
            "scoringUri": f"{base}/score/{endpoint.name}",
            "swaggerUri": f"{base}/score/{endpoint.name}/swagger.json",
        }
    )
    props.setdefault("traffic", {})
    props.setdefault("mirrorTraffic", {})
    return {
        "id": f"{workspace_id(request)}/onlineEndpoints/{endpoint.name}",
        "name": endpoint.name,
        "type": f"{PROVIDER}/workspaces/onlineEndpoints",
        **body,
        "properties": props,
        "systemData": {"createdAt": iso(endpoint.created)},
    }


def deployment_json(
    request: web.Request, endpoint: OnlineEndpoint, deployment: OnlineDeployment
) -> dict[str, Any]:
    """An online deployment resource."""
    body = copy.deepcopy(deployment.body)
    body["properties"]["provisioningState"] = deployment.state
    return {
        "id": f"{workspace_id(request)}/onlineEndpoints/{endpoint.name}"
        f"/deployments/{deployment.name}",
        "name": deployment.name,
        "type": f"{PROVIDER}/workspaces/onlineEndpoints/deployments",
        **body,
        "systemData": {"createdAt": iso(deployment.created)},
    }


def find_endpoint(v2: V2State, workspace: str, name: str) -> OnlineEndpoint:
    """The endpoint, or 404."""
    endpoint = v2.endpoints.get((workspace, name))
    if endpoint is None:
        raise ApiError(404, "ResourceNotFound", f"Online endpoint '{name}' was not found.")
    return endpoint


def check_traffic(endpoint: OnlineEndpoint, props: dict[str, Any]) -> None:
    """The traffic rules of a managed online endpoint (400 BadArgument when broken)."""
    traffic = props.get("traffic") or {}
    mirror = props.get("mirrorTraffic") or {}
    for weights in (traffic, mirror):
        if not isinstance(weights, dict) or not all(
            isinstance(v, int) and 0 <= v <= 100 for v in weights.values()
        ):
            raise _bad("Traffic weights must be whole percentages.")
        missing = sorted(set(weights) - set(endpoint.deployments))
        if missing:
            raise _bad(f"Traffic names deployments that do not exist: {', '.join(missing)}.")
    if sum(traffic.values()) not in (0, 100):
        raise _bad("The total traffic percentage must sum to either 0% or 100%.")
    mirrored = {k: v for k, v in mirror.items() if v > 0}
    if len(mirrored) > 1 or any(v > 50 for v in mirrored.values()):
        raise _bad("Mirror traffic goes to one deployment, at most 50%.")
    if any(traffic.get(k, 0) > 0 for k in mirrored):
        raise _bad("A deployment gets either live or mirrored traffic, not both.")


def _keys(v2: V2State, name: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{v2.faults.seed}:{name}:{len(v2.endpoints)}".encode()).hexdigest()
    return digest[:32], digest[32:]


async def _settle(state: EmulatorState, target: Any, done: str, operation: LongOperation) -> None:
    """Finish a provisioning operation after the configured delay."""
    await asyncio.sleep(state.settings.provisioning_delay_seconds)
    target.state = done
    operation.status = "Succeeded" if done == "Succeeded" else "Failed"
    if done == "Failed":
        operation.error = {"code": "ResourceNotReady", "message": "Provisioning failed."}


async def put_endpoint(request: web.Request) -> web.Response:
    """PUT onlineEndpoints/{ep}: create (201 + Azure-AsyncOperation) or update (200)."""
    v2, workspace, location = await _checked(request)
    name = _name(request.match_info["endpoint"], "endpoint")
    body = await read_object(request)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _bad("The body needs a properties object.")
    mode = AUTH_MODES.get(str(props.get("authMode", "Key")).lower())
    if mode is None:
        raise _bad("authMode must be Key, AMLToken or AADToken.")
    props = {**props, "authMode": mode}
    stored = {"location": body.get("location", location), "tags": body.get("tags") or {}}
    stored["identity"] = body.get("identity") or {"type": "SystemAssigned"}
    existing = v2.endpoints.get((workspace, name))
    if existing is None:
        if len(v2.endpoints) >= v2.config.max_endpoints:
            raise ApiError(400, "OutOfQuota", "The subscription's online endpoint quota is used.")
        endpoint = OnlineEndpoint(name, workspace, {**stored, "properties": props}, _keys(v2, name))
        check_traffic(endpoint, props)
        v2.endpoints[(workspace, name)] = endpoint
        endpoint.operations += 1
        _, headers = _operation(
            request, v2, location, lambda op: _settle(request.app[STATE], endpoint, "Succeeded", op)
        )
        response = web.json_response(endpoint_json(request, endpoint), status=201, headers=headers)
        return _reply(v2, request, response)
    if existing.busy:
        raise ApiError(409, "Conflict", "Another operation is in progress on this endpoint.")
    check_traffic(existing, props)
    existing.body = {**stored, "properties": props}
    existing.operations += 1
    return _reply(v2, request, web.json_response(endpoint_json(request, existing)))


async def patch_endpoint(request: web.Request) -> web.Response:
    """PATCH onlineEndpoints/{ep}: tags, traffic, mirror traffic (202 + Location)."""
    v2, workspace, location = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    if endpoint.busy:
        raise ApiError(409, "Conflict", "Another operation is in progress on this endpoint.")
    body = await read_object(request)
    patch = body.get("properties") or {}
    props = {**endpoint.body["properties"]}
    for key in ("traffic", "mirrorTraffic", "description"):
        if key in patch:
            props[key] = patch[key]
    check_traffic(endpoint, props)
    endpoint.body["properties"] = props
    if "tags" in body:
        endpoint.body["tags"] = body["tags"] or {}
    endpoint.operations += 1
    _, headers = _operation(request, v2, location)
    return _reply(
        v2,
        request,
        web.json_response(endpoint_json(request, endpoint), status=202, headers=headers),
    )


async def get_endpoint(request: web.Request) -> web.Response:
    """GET onlineEndpoints/{ep}."""
    v2, workspace, _ = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    return web.json_response(endpoint_json(request, endpoint))


async def list_endpoints(request: web.Request) -> web.Response:
    """GET onlineEndpoints."""
    v2, workspace, _ = await _checked(request)
    found = [endpoint_json(request, e) for e in v2.endpoints.values() if e.workspace == workspace]
    return web.json_response({"value": found})


async def delete_endpoint(request: web.Request) -> web.Response:
    """DELETE onlineEndpoints/{ep} (its deployments too): 202 + Location, or 204."""
    v2, workspace, location = await _checked(request)
    endpoint = v2.endpoints.pop((workspace, request.match_info["endpoint"]), None)
    if endpoint is None:
        return web.Response(status=204)
    _, headers = _operation(request, v2, location)
    return web.Response(status=202, headers=headers)


async def list_keys(request: web.Request) -> web.Response:
    """POST onlineEndpoints/{ep}/listKeys."""
    v2, workspace, _ = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    primary, secondary = endpoint.keys
    return web.json_response({"primaryKey": primary, "secondaryKey": secondary})


async def get_token(request: web.Request) -> web.Response:
    """POST onlineEndpoints/{ep}/token: an AML token (for authMode AMLToken)."""
    v2, workspace, _ = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    now = utcnow()
    return web.json_response(
        {
            "accessToken": f"aml-{endpoint.keys[0]}",
            "tokenType": "Bearer",
            "expiryTimeUtc": int((now + timedelta(hours=1)).timestamp()),
            "refreshAfterTimeUtc": int((now + timedelta(minutes=30)).timestamp()),
        }
    )


async def put_deployment(request: web.Request) -> web.Response:
    """PUT …/deployments/{d}: create or update (201 + Azure-AsyncOperation)."""
    v2, workspace, location = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    name = _name(request.match_info["deployment"], "deployment")
    body = await read_object(request)
    if not isinstance(body.get("properties"), dict):
        raise _bad("The body needs a properties object.")
    if endpoint.busy:
        raise ApiError(409, "Conflict", "Another operation is in progress on this endpoint.")
    existing = endpoint.deployments.get(name)
    if existing is None:
        total = sum(len(e.deployments) for e in v2.endpoints.values())
        if len(endpoint.deployments) >= v2.config.max_deployments_per_endpoint:
            raise ApiError(400, "OutOfQuota", "The endpoint's deployment quota is used.")
        if total >= v2.config.max_deployments:
            raise ApiError(400, "OutOfQuota", "The subscription's deployment quota is used.")
        deployment = endpoint.deployments[name] = OnlineDeployment(name, copy.deepcopy(body))
    else:
        deployment = existing
        deployment.body, deployment.state, deployment.scorer = copy.deepcopy(body), "Updating", None
    done = "Succeeded"
    if v2.faults.deployments_fail > 0:
        v2.faults.deployments_fail -= 1
        done = "Failed"
    endpoint.operations += 1
    _, headers = _operation(
        request, v2, location, lambda op: _settle(request.app[STATE], deployment, done, op)
    )
    response = web.json_response(
        deployment_json(request, endpoint, deployment), status=201, headers=headers
    )
    return _reply(v2, request, response)


async def get_deployment(request: web.Request) -> web.Response:
    """GET …/deployments/{d}."""
    v2, workspace, _ = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    deployment = endpoint.deployments.get(request.match_info["deployment"])
    if deployment is None:
        raise ApiError(404, "ResourceNotFound", "The deployment was not found.")
    return web.json_response(deployment_json(request, endpoint, deployment))


async def list_deployments(request: web.Request) -> web.Response:
    """GET …/deployments."""
    v2, workspace, _ = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    found = [deployment_json(request, endpoint, d) for d in endpoint.deployments.values()]
    return web.json_response({"value": found})


async def delete_deployment(request: web.Request) -> web.Response:
    """DELETE …/deployments/{d}: refused with live traffic; 202 + Location, or 204."""
    v2, workspace, location = await _checked(request)
    endpoint = find_endpoint(v2, workspace, request.match_info["endpoint"])
    name = request.match_info["deployment"]
    if name not in endpoint.deployments:
        return web.Response(status=204)
    if (endpoint.body["properties"].get("traffic") or {}).get(name, 0) > 0:
        raise _bad("You cannot delete a deployment that has live traffic allocated to it.")
    del endpoint.deployments[name]
    _, headers = _operation(request, v2, location)
    return web.Response(status=202, headers=headers)


async def operation_status(request: web.Request) -> web.Response:
    """GET an ``Azure-AsyncOperation`` URL: ``{"status", "error"?}``."""
    v2 = request.app[V2_STATE]
    operation = v2.lros.get(request.match_info["operation_id"])
    if operation is None:
        raise ApiError(404, "ResourceNotFound", "The operation was not found.")
    body: dict[str, Any] = {"id": operation.id, "status": operation.status}
    if operation.error is not None:
        body["error"] = operation.error
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    """Register the endpoint, deployment and operation-status routes."""
    base = f"{WORKSPACE_PATH}/onlineEndpoints"
    one = f"{base}/{{endpoint}}"
    app.router.add_get(base, list_endpoints)
    app.router.add_put(one, put_endpoint)
    app.router.add_patch(one, patch_endpoint)
    app.router.add_get(one, get_endpoint)
    app.router.add_delete(one, delete_endpoint)
    app.router.add_post(f"{one}/listKeys", list_keys)
    app.router.add_post(f"{one}/token", get_token)
    app.router.add_get(f"{one}/deployments", list_deployments)
    app.router.add_put(f"{one}/deployments/{{deployment}}", put_deployment)
    app.router.add_get(f"{one}/deployments/{{deployment}}", get_deployment)
    app.router.add_delete(f"{one}/deployments/{{deployment}}", delete_deployment)
    app.router.add_get(STATUS_PATH, operation_status)
