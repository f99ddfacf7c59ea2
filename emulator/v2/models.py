"""The workspace's model registry (shared/PROTOCOL-V2 §3): containers and their versions.

``PUT models/{name}`` creates (201) or replaces (200) a container: ``description``, ``tags``,
``properties``, ``isArchived``; every change of its tags is kept in the stats
(``tag_history``), so tests can see a pointer tag move. ``PUT models/{name}/versions/{v}``
creates a version (201; the container too when it is missing) whose ``modelUri`` names a
registered datastore; the same body again answers 200. **Choice:** only ``description``,
``tags``, ``properties``, ``stage`` and ``isArchived`` of a version may change; any other
difference answers 400 ``UserError`` (detail ``Immutable``). Lists filter by ``tags`` /
``properties`` (``a,b=1``), ``listViewType`` and ``version``, order by creation (``$orderBy``
``createdtime desc`` reverses it), take ``$top`` and page with ``$skip``. DELETE answers 200, or
204 when there was nothing to delete. The fault switch ``v2_models`` fails, slows or drops
these calls (``commit_then_drop`` on the PUTs).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from aiohttp import web

from emulator.errors import ApiError, read_object
from emulator.faults import drop_connection
from emulator.state import iso
from emulator.v2.jobs import datastore_ref
from emulator.v2.lists import matches, page, parse_filter, view_matches
from emulator.v2.state import V2_STATE, ModelContainer, ModelVersion, V2State
from emulator.v2.workspace import PROVIDER, WORKSPACE_PATH, checked, workspace_id

CONTAINER_FIELDS = frozenset({"description", "tags", "properties", "isArchived"})
VERSION_MUTABLE = frozenset({"description", "tags", "properties", "stage", "isArchived"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _user_error(message: str, detail: str | None = None) -> ApiError:
    return ApiError(400, "UserError", message, detail)


def _strings(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _user_error(f"properties.{what} must map strings to strings.")
    return dict(value)


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _user_error("The body needs a properties object.")
    props = copy.deepcopy(props)
    props["tags"] = _strings(props.get("tags"), "tags")
    props["properties"] = _strings(props.get("properties"), "properties")
    props["isArchived"] = bool(props.get("isArchived", False))
    return props


def _reply(v2: V2State, request: web.Request, response: web.Response) -> web.Response:
    if v2.faults.models.take_drop():
        drop_connection(request)
    return response


async def _checked(request: web.Request) -> tuple[V2State, str]:
    v2 = request.app[V2_STATE]
    await v2.faults.models.before()
    _, workspace = checked(request)
    return v2, workspace.name


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not _NAME.fullmatch(name):
        raise _user_error(f"Invalid model name '{name}'.")
    return name


def container_json(request: web.Request, model: ModelContainer) -> dict[str, Any]:
    """A model container resource."""
    props = copy.deepcopy(model.properties)
    versions = [v.version for v in model.versions.values()]
    numeric = [int(v) for v in versions if v.isdigit()]
    props.update(
        {
            "latestVersion": versions[-1] if versions else None,
            "nextVersion": str(max(numeric, default=0) + 1),
            "provisioningState": "Succeeded",
        }
    )
    return {
        "id": f"{workspace_id(request)}/models/{model.name}",
        "name": model.name,
        "type": f"{PROVIDER}/workspaces/models",
        "properties": props,
        "systemData": {"createdAt": iso(model.created)},
    }


def version_json(
    request: web.Request, model: ModelContainer, version: ModelVersion
) -> dict[str, Any]:
    """A model version resource."""
    props = copy.deepcopy(version.properties)
    props["provisioningState"] = "Succeeded"
    return {
        "id": f"{workspace_id(request)}/models/{model.name}/versions/{version.version}",
        "name": version.version,
        "type": f"{PROVIDER}/workspaces/models/versions",
        "properties": props,
        "systemData": {"createdAt": iso(version.created)},
    }


def find_model(v2: V2State, workspace: str, name: str) -> ModelContainer:
    """The container, or 404."""
    model = v2.models.get((workspace, name))
    if model is None:
        raise ApiError(404, "ResourceNotFound", f"Model container '{name}' was not found.")
    return model


async def put_container(request: web.Request) -> web.Response:
    """PUT models/{name}: create (201) or replace (200) the container."""
    v2, workspace = await _checked(request)
    name = _name(request)
    props = _properties(await read_object(request))
    unknown = sorted(set(props) - CONTAINER_FIELDS)
    if unknown:
        raise _user_error(f"Unknown container properties: {', '.join(unknown)}.")
    model = v2.models.get((workspace, name))
    status = 200
    if model is None:
        model = v2.models[(workspace, name)] = ModelContainer(name, workspace)
        status = 201
    if props["tags"] != (model.properties.get("tags") or {}):
        model.tag_history.append(dict(props["tags"]))
    model.properties = props
    return _reply(v2, request, web.json_response(container_json(request, model), status=status))


async def get_container(request: web.Request) -> web.Response:
    """GET models/{name}."""
    v2, workspace = await _checked(request)
    model = find_model(v2, workspace, _name(request))
    return web.json_response(container_json(request, model))


async def list_containers(request: web.Request) -> web.Response:
    """GET models: the workspace's containers in the view, oldest first."""
    v2, workspace = await _checked(request)
    view = request.query.get("listViewType")
    models = [
        m
        for m in v2.models.values()
        if m.workspace == workspace and view_matches(view, bool(m.properties.get("isArchived")))
    ]
    return page(request, models, lambda m: container_json(request, m), v2.config.list_page_size)


async def delete_container(request: web.Request) -> web.Response:
    """DELETE models/{name} (its versions with it): 200, or 204 when absent."""
    v2, workspace = await _checked(request)
    if v2.models.pop((workspace, _name(request)), None) is None:
        return web.Response(status=204)
    return web.Response(status=200)


def _version_id(request: web.Request) -> str:
    version = request.match_info["version"]
    if not _VERSION.fullmatch(version):
        raise _user_error(f"Invalid model version '{version}'.")
    return version


def _validate_version(v2: V2State, workspace: str, props: dict[str, Any]) -> None:
    uri = props.get("modelUri")
    if not isinstance(uri, str) or not uri:
        raise _user_error("properties.modelUri is required.")
    datastore_ref(v2, workspace, uri)  # a registered datastore, or 400


async def put_version(request: web.Request) -> web.Response:
    """PUT models/{name}/versions/{version}: create (201), same body (200), changed (400)."""
    v2, workspace = await _checked(request)
    name, version_id = _name(request), _version_id(request)
    props = _properties(await read_object(request))
    _validate_version(v2, workspace, props)
    model = v2.models.get((workspace, name))
    if model is None:
        model = v2.models[(workspace, name)] = ModelContainer(name, workspace)
    existing = model.versions.get(version_id)
    if existing is None:
        version = model.versions[version_id] = ModelVersion(version_id, props)
        return _reply(
            v2, request, web.json_response(version_json(request, model, version), status=201)
        )

    def fixed(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k not in VERSION_MUTABLE}

    if fixed(existing.properties) != fixed(props):
        existing.puts_refused += 1
        raise _user_error(
            f"Model version '{name}:{version_id}' already exists with another modelUri, "
            "modelType, jobName or flavors. Only description, tags, properties, stage and "
            "isArchived can be updated.",
            "Immutable",
        )
    existing.properties = props
    existing.puts_unchanged += 1
    return _reply(
        v2, request, web.json_response(version_json(request, model, existing), status=200)
    )


async def get_version(request: web.Request) -> web.Response:
    """GET models/{name}/versions/{version}."""
    v2, workspace = await _checked(request)
    model = find_model(v2, workspace, _name(request))
    version = model.versions.get(_version_id(request))
    if version is None:
        raise ApiError(404, "ResourceNotFound", "The model version was not found.")
    return web.json_response(version_json(request, model, version))


async def list_versions(request: web.Request) -> web.Response:
    """GET models/{name}/versions: filtered by tags, properties, view and version."""
    v2, workspace = await _checked(request)
    model = find_model(v2, workspace, _name(request))
    query = request.query
    tags, properties = parse_filter(query.get("tags")), parse_filter(query.get("properties"))
    wanted = query.get("version")
    versions = [
        v
        for v in model.versions.values()
        if (wanted is None or v.version == wanted)
        and matches(v.properties.get("tags"), tags)
        and matches(v.properties.get("properties"), properties)
        and view_matches(query.get("listViewType"), bool(v.properties.get("isArchived")))
    ]
    if query.get("$orderBy", "").replace(" ", "").lower() == "createdtimedesc":
        versions.reverse()
    top = query.get("$top")
    if top is not None:
        if not top.isdigit():
            raise _user_error("$top must be a whole number.")
        versions = versions[: int(top)]
    return page(
        request, versions, lambda v: version_json(request, model, v), v2.config.list_page_size
    )


async def delete_version(request: web.Request) -> web.Response:
    """DELETE models/{name}/versions/{version}: 200, or 204 when absent."""
    v2, workspace = await _checked(request)
    model = v2.models.get((workspace, _name(request)))
    if model is None or model.versions.pop(_version_id(request), None) is None:
        return web.Response(status=204)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    """Register the model container and version routes."""
    base = f"{WORKSPACE_PATH}/models"
    app.router.add_get(base, list_containers)
    app.router.add_put(f"{base}/{{name}}", put_container)
    app.router.add_get(f"{base}/{{name}}", get_container)
    app.router.add_delete(f"{base}/{{name}}", delete_container)
    app.router.add_get(f"{base}/{{name}}/versions", list_versions)
    app.router.add_put(f"{base}/{{name}}/versions/{{version}}", put_version)
    app.router.add_get(f"{base}/{{name}}/versions/{{version}}", get_version)
    app.router.add_delete(f"{base}/{{name}}/versions/{{version}}", delete_version)
