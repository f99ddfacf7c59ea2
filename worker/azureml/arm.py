"""New (ARM) web services: read, create from a template, swap the trained model, poll, keys."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import aiohttp
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from worker.azureml.errors import NotFoundError, PermanentError, invalid_response
from worker.azureml.http import JsonReply, request_json, segment
from worker.azureml.retry import RetryPolicy, with_retries

API_VERSION = "2017-01-01"
TRAINED_MODEL_SUFFIX = "[trained model]"
# Set by the service; a create body that carries them is refused or misleading.
_READ_ONLY_PROPERTIES = frozenset(
    {"provisioningState", "createdOn", "modifiedOn", "swaggerLocation", "keys"}
)


class TokenProvider(Protocol):
    """Where ARM bearer tokens come from (a static token, or later an azure-identity credential)."""

    async def token(self) -> SecretStr:
        """A currently valid bearer token."""
        ...


@dataclass(frozen=True)
class StaticToken:
    """A fixed bearer token (the emulator, or a token minted outside the process)."""

    value: SecretStr

    async def token(self) -> SecretStr:
        """The fixed token."""
        return self.value


class ProvisioningState(StrEnum):
    """``properties.provisioningState`` of a web service."""

    UNKNOWN = "Unknown"
    PROVISIONING = "Provisioning"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


_STATES = {state.value: state for state in ProvisioningState}


@dataclass(frozen=True)
class WebService:
    """A web service as GET/PUT/PATCH answer it; ``definition`` is the whole body, unchanged."""

    name: str
    provisioning_state: ProvisioningState
    swagger_location: str | None
    definition: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class WebServiceKeys:
    """The service's two API keys (what ``listKeys`` answers)."""

    primary: SecretStr
    secondary: SecretStr | None


class _Properties(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel)
    provisioning_state: str | None = None
    swagger_location: str | None = None


class _Service(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    properties: _Properties


class _Keys(BaseModel):
    model_config = ConfigDict(extra="ignore")
    primary: SecretStr
    secondary: SecretStr | None = None


def parse_web_service(payload: object) -> WebService:
    """A ``WebService`` from an ARM body; unknown provisioning states read as ``Unknown``."""
    if not isinstance(payload, dict):
        raise invalid_response("web service body is not an object")
    try:
        parsed = _Service.model_validate(payload)
    except ValidationError as exc:
        raise invalid_response(exc) from exc
    state = _STATES.get(parsed.properties.provisioning_state or "", ProvisioningState.UNKNOWN)
    return WebService(
        name=parsed.name,
        provisioning_state=state,
        swagger_location=parsed.properties.swagger_location,
        definition=copy.deepcopy(payload),
    )


def runtime_base(service: WebService) -> str:
    """The service's runtime base (RRS ``execute``, BES ``jobs``): swaggerLocation, trimmed."""
    location = service.swagger_location
    if not location:
        raise PermanentError(
            f"web service {service.name!r} has no swaggerLocation", code="NoSwaggerLocation"
        )
    base = location.split("?", 1)[0].rstrip("/")
    return base.removesuffix("/swagger.json")


def trained_model_asset(definition: Mapping[str, Any]) -> str:
    """The key of the one asset of type ``Resource`` named ``... [trained model]``."""
    assets = definition.get("properties", {}).get("assets") or {}
    keys = [
        key
        for key, asset in assets.items()
        if isinstance(asset, Mapping)
        and asset.get("type") == "Resource"
        and str(asset.get("name", "")).endswith(TRAINED_MODEL_SUFFIX)
    ]
    if len(keys) != 1:
        found = "no" if not keys else f"{len(keys)}"
        raise PermanentError(
            f"web service definition has {found} trained-model assets; need exactly one",
            code="NoTrainedModelAsset" if not keys else "AmbiguousTrainedModelAsset",
        )
    return str(keys[0])


def with_trained_model(
    definition: Mapping[str, Any], uri: str, sas: SecretStr | None = None
) -> dict[str, Any]:
    """A copy of ``definition`` whose trained-model asset points at ``uri`` (SAS as credentials)."""
    updated = copy.deepcopy(dict(definition))
    key = trained_model_asset(updated)
    asset = updated["properties"]["assets"][key]
    location = {"uri": uri}
    if sas is not None:
        location["credentials"] = sas.get_secret_value()
    asset["locationInfo"] = location
    return updated


def definition_for_tenant(
    template: Mapping[str, Any],
    name: str,
    *,
    title: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    storage_account_key: SecretStr | None = None,
) -> dict[str, Any]:
    """A create body for a new service copied from a template service's GET.

    Keeps location, package, assets, storage account, commitment plan and workspace; drops the
    id and read-only properties; renames; fills the storage key (GET never returns it).
    """
    body = {
        key: copy.deepcopy(value) for key, value in template.items() if key not in ("id", "name")
    }
    body["name"] = name
    if tags is not None:
        body["tags"] = {**(body.get("tags") or {}), **tags}
    properties = {
        key: value
        for key, value in (body.get("properties") or {}).items()
        if key not in _READ_ONLY_PROPERTIES
    }
    properties["title"] = title or name
    if description is not None:
        properties["description"] = description
    if storage_account_key is not None:
        storage = dict(properties.get("storageAccount") or {})
        storage["key"] = storage_account_key.get_secret_value()
        properties["storageAccount"] = storage
    body["properties"] = properties
    return body


async def arm_call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: TokenProvider,
    policy: RetryPolicy,
    timeout_seconds: float,
    body: object = None,
) -> JsonReply:
    """One ARM request with a fresh bearer token per try, retried by ``policy`` (callers make
    only calls that may be repeated)."""

    async def once() -> JsonReply:
        return await request_json(
            session,
            method,
            url,
            token=await token.token(),
            timeout_seconds=timeout_seconds,
            json_body=body,
        )

    return await with_retries(once, policy, idempotent=True)


class ArmClient:
    """``Microsoft.MachineLearning/webServices`` of one subscription and resource group."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        arm_url: str,
        subscription_id: str,
        resource_group: str,
        token: TokenProvider,
        policy: RetryPolicy | None = None,
        *,
        api_version: str = API_VERSION,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._session = session
        self._base = (
            f"{arm_url.rstrip('/')}/subscriptions/{segment(subscription_id, 'subscription id')}"
            f"/resourceGroups/{segment(resource_group, 'resource group')}"
            "/providers/Microsoft.MachineLearning/webServices"
        )
        self._token = token
        self._policy = policy or RetryPolicy()
        self._api_version = api_version
        self._timeout = timeout_seconds

    def _url(self, name: str, action: str = "") -> str:
        path = f"{self._base}/{segment(name, 'web service name')}"
        if action:
            path += f"/{action}"
        return f"{path}?api-version={self._api_version}"

    async def _call(self, method: str, url: str, body: object = None) -> JsonReply:
        # PUT and PATCH carry the whole desired state, so every call here may be repeated.
        return await arm_call(
            self._session, method, url, self._token, self._policy, self._timeout, body
        )

    async def list_names(self) -> list[str]:
        """Names of the resource group's web services (the first page ARM answers)."""
        reply = await self._call("GET", f"{self._base}?api-version={self._api_version}")
        body = reply.body
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, list):
            raise invalid_response("web service list has no value array")
        return [str(s["name"]) for s in value if isinstance(s, dict) and "name" in s]

    async def get(self, name: str) -> WebService | None:
        """The web service, or ``None`` when there is none of that name."""
        try:
            reply = await self._call("GET", self._url(name))
        except NotFoundError:
            return None
        return parse_web_service(reply.body)

    async def put(self, name: str, body: Mapping[str, Any]) -> WebService:
        """Create (201) or replace (200) the service; provisioning continues after the answer."""
        reply = await self._call("PUT", self._url(name), dict(body))
        return parse_web_service(reply.body)

    async def patch_assets(self, name: str, assets: Mapping[str, Any]) -> WebService:
        """Replace the service's assets (e.g. a new trained model); provisioning follows."""
        body = {"properties": {"packageType": "Graph", "assets": dict(assets)}}
        reply = await self._call("PATCH", self._url(name), body)
        return parse_web_service(reply.body)

    async def provisioning_state(self, name: str) -> ProvisioningState:
        """One look at the service's provisioning state (the caller polls across steps)."""
        reply = await self._call("GET", self._url(name))
        return parse_web_service(reply.body).provisioning_state

    async def list_keys(self, name: str) -> WebServiceKeys:
        """The service's primary and secondary API keys."""
        url = self._url(name, "listKeys")
        reply = await self._call("GET", url)
        try:
            keys = _Keys.model_validate(reply.body)
        except ValidationError as exc:
            raise invalid_response(exc, method="GET", url=url) from exc
        return WebServiceKeys(primary=keys.primary, secondary=keys.secondary)

    async def delete(self, name: str) -> None:
        """Delete the service; one that is already gone is fine."""
        try:
            await self._call("DELETE", self._url(name))
        except NotFoundError:
            return
