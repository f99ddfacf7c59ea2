"""The v2 workspace path, its ARM checks, the workspace GET and Azure Blob datastores.

Every v2 route sits under ``/subscriptions/{sub}/resourceGroups/{rg}/providers/
Microsoft.MachineLearningServices/workspaces/{ws}`` and takes the classic ARM surface's bearer
token. ``api-version`` is required and may be any ``YYYY-MM-DD[-preview]``; every call takes a
token of its principal's ARM budget (``emulator/v2/throttle.py``) and answers with what is
left. A datastore maps ``azureml://datastores/{name}/paths/{path}`` onto ``{container}/{path}``
of its account; an ``endpoint`` with a port (Azurite, ``127.0.0.1:10000``) is addressed path-style,
``{protocol}://{endpoint}/{account}``, any other as ``{protocol}://{account}.blob.{endpoint}``.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from emulator.errors import ApiError, read_object
from emulator.state import STATE, bearer_matches
from emulator.v2.state import V2_STATE, Datastore, V2State, V2WorkspaceConfig

PROVIDER = "Microsoft.MachineLearningServices"
WORKSPACE_PATH = (
    "/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    f"/providers/{PROVIDER}/workspaces/{{workspace}}"
)
# The rate-limit headers a throttled surface's answer carries (set by ``checked``).
RATE_HEADERS = web.RequestKey("v2_rate_headers", dict[str, str])
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_DATASTORE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")


def workspace_id(request: web.Request) -> str:
    """The ARM id of the workspace in the path, as the client spelled it."""
    match = request.match_info
    return (
        f"/subscriptions/{match['subscription_id']}/resourceGroups/{match['resource_group']}"
        f"/providers/{PROVIDER}/workspaces/{match['workspace']}"
    )


def checked(request: web.Request) -> tuple[V2State, V2WorkspaceConfig]:
    """The v2 state and the addressed workspace, after api-version, token, budget and path
    checks (the call takes a token of its principal's bucket, or answers 429)."""
    state = request.app[STATE]
    version = request.query.get("api-version")
    if version is None or not _API_VERSION.fullmatch(version):
        raise ApiError(
            400, "InvalidApiVersion", "The api-version query parameter is missing or malformed."
        )
    if not bearer_matches(request.headers.get("Authorization"), state.config.arm.token):
        raise ApiError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid or has expired.",
        )
    v2 = request.app[V2_STATE]
    request[RATE_HEADERS] = v2.throttle.take(state.config.arm.token, request.method)
    match = request.match_info
    arm = state.config.arm
    if match["subscription_id"].lower() != arm.subscription_id.lower():
        raise ApiError(404, "SubscriptionNotFound", "The subscription was not found.")
    if match["resource_group"].lower() != arm.resource_groups[0].lower():
        raise ApiError(
            404,
            "ResourceGroupNotFound",
            f"Resource group '{match['resource_group']}' could not be found.",
        )
    return v2, v2.workspace(match["workspace"])


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the remaining budget on every answer of a counted call."""
    headers = request.get(RATE_HEADERS)
    if headers:
        for name, value in headers.items():
            response.headers.setdefault(name, value)


def blob_endpoint(account: str, endpoint: str, protocol: str) -> str:
    """The blob service URL of a datastore's account (path-style when ``endpoint`` has a port)."""
    if ":" in endpoint:
        return f"{protocol}://{endpoint}/{account}"
    return f"{protocol}://{account}.blob.{endpoint}"


def _text(props: dict[str, Any], name: str, default: str | None = None) -> str:
    value = props.get(name, default)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "UserError", f"properties.{name} is required (a string).")
    return value


def parse_datastore(name: str, body: dict[str, Any]) -> Datastore:
    """An Azure Blob datastore with account-key credentials from a PUT body."""
    props = body.get("properties")
    if not isinstance(props, dict):
        raise ApiError(400, "UserError", "The body needs a properties object.")
    if props.get("datastoreType") != "AzureBlob":
        raise ApiError(400, "UserError", "Only datastoreType AzureBlob is supported.")
    account = _text(props, "accountName")
    container = _text(props, "containerName")
    if not _CONTAINER.fullmatch(container):
        raise ApiError(400, "UserError", f"Invalid container name '{container}'.")
    endpoint = _text(props, "endpoint", "core.windows.net")
    protocol = _text(props, "protocol", "https")
    if protocol not in ("http", "https"):
        raise ApiError(400, "UserError", "properties.protocol must be http or https.")
    credentials = props.get("credentials")
    secrets = credentials.get("secrets") if isinstance(credentials, dict) else None
    key = secrets.get("key") if isinstance(secrets, dict) else None
    if not isinstance(credentials, dict) or credentials.get("credentialsType") != "AccountKey":
        raise ApiError(400, "UserError", "Only AccountKey credentials are supported.")
    if not isinstance(key, str) or not key:
        raise ApiError(400, "UserError", "credentials.secrets.key is required.")
    connection_string = (
        f"DefaultEndpointsProtocol={protocol};AccountName={account};AccountKey={key};"
        f"BlobEndpoint={blob_endpoint(account, endpoint, protocol)};"
    )
    stored = {
        "datastoreType": "AzureBlob",
        "accountName": account,
        "containerName": container,
        "endpoint": endpoint,
        "protocol": protocol,
        "credentials": {"credentialsType": "AccountKey"},
    }
    return Datastore(name, stored, connection_string, container)


def datastore_json(request: web.Request, datastore: Datastore) -> dict[str, Any]:
    """A datastore resource as GET answers it (no secrets)."""
    return {
        "id": f"{workspace_id(request)}/datastores/{datastore.name}",
        "name": datastore.name,
        "type": f"{PROVIDER}/workspaces/datastores",
        "properties": dict(datastore.body),
    }


async def put_datastore(request: web.Request) -> web.Response:
    """PUT datastores/{name}: create (201) or replace (200) an Azure Blob datastore."""
    v2, workspace = checked(request)
    name = request.match_info["name"]
    if not _DATASTORE.fullmatch(name):
        raise ApiError(400, "UserError", f"Invalid datastore name '{name}'.")
    datastore = parse_datastore(name, await read_object(request))
    key = (workspace.name, name.lower())
    status = 200 if key in v2.datastores else 201
    v2.datastores[key] = datastore
    return web.json_response(datastore_json(request, datastore), status=status)


async def get_datastore(request: web.Request) -> web.Response:
    """GET datastores/{name}."""
    v2, workspace = checked(request)
    name = request.match_info["name"]
    datastore = v2.datastores.get((workspace.name, name.lower()))
    if datastore is None:
        raise ApiError(404, "ResourceNotFound", f"Datastore '{name}' was not found.")
    return web.json_response(datastore_json(request, datastore))


async def get_workspace(request: web.Request) -> web.Response:
    """GET the workspace: its id, location and the MLflow tracking URI (on this emulator)."""
    _, workspace = checked(request)
    state = request.app[STATE]
    host = state.base_url.split("://", 1)[-1]
    path = workspace_id(request)
    return web.json_response(
        {
            "id": path,
            "name": workspace.name,
            "location": workspace.location,
            "type": f"{PROVIDER}/workspaces",
            "properties": {
                "provisioningState": "Succeeded",
                "mlFlowTrackingUri": f"azureml://{host}/mlflow/v1.0{path}",
                "discoveryUrl": f"{state.base_url}/discovery",
            },
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the workspace and datastore routes and the rate-limit headers."""
    app.on_response_prepare.append(add_rate_headers)
    app.router.add_get(WORKSPACE_PATH, get_workspace)
    app.router.add_put(f"{WORKSPACE_PATH}/datastores/{{name}}", put_datastore)
    app.router.add_get(f"{WORKSPACE_PATH}/datastores/{{name}}", get_datastore)
