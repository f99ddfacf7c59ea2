"""Classic web service endpoint management: per-tenant endpoints and their trained model."""

from __future__ import annotations

from typing import Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError
from pydantic.alias_generators import to_pascal

from worker.azureml.errors import NotFoundError, invalid_response
from worker.azureml.http import JsonReply, request_json, segment
from worker.azureml.locations import BlobLocation
from worker.azureml.retry import RetryPolicy, with_retries
from worker.naming import DEFAULT_ENDPOINT, ENDPOINT_NAME

ThrottleLevel = Literal["High", "Low"]


class _Tolerant(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )


class ResourceLocation(_Tolerant):
    """Where an endpoint resource's blob lives, as the endpoint reports it (parts may be empty)."""

    base_location: str | None = None
    relative_location: str | None = None
    sas_blob_token: SecretStr | None = None


class EndpointResource(_Tolerant):
    """An updatable resource of an endpoint, e.g. ``Bike Rental [trained model]``."""

    name: str
    kind: str | None = None
    location: ResourceLocation | None = None


class Endpoint(_Tolerant):
    """A classic web service endpoint (PROTOCOL §5.4); its ``api_location`` is its runtime base."""

    name: str
    api_location: str
    primary_key: SecretStr
    secondary_key: SecretStr | None = None
    description: str | None = None
    creation_time: str | None = None
    web_service_id: str | None = None
    workspace_id: str | None = None
    help_location: str | None = None
    version: int | str | None = None
    max_concurrent_calls: int | None = None
    throttle_level: str | None = None
    diagnostics_trace_level: str | None = None
    resources: list[EndpointResource] = Field(default_factory=list)


class WebServiceBrief(_Tolerant):
    """A classic web service as the management API lists it (PROTOCOL §5)."""

    id: str
    name: str
    default_endpoint_name: str | None = None
    endpoint_count: int | None = None


_ENDPOINTS = TypeAdapter(list[Endpoint])
_SERVICES = TypeAdapter(list[WebServiceBrief])


def _endpoint_name(name: str, *, patching: bool = False) -> str:
    if not ENDPOINT_NAME.fullmatch(name):
        raise ValueError(f"endpoint names are 1-24 lowercase letters and digits: {name!r}")
    if patching and name == DEFAULT_ENDPOINT:
        raise ValueError("the default endpoint cannot be patched")
    return name


class EndpointsClient:
    """Management API of one workspace's classic web services, with the workspace token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        management_url: str,
        workspace_id: str,
        token: SecretStr,
        policy: RetryPolicy | None = None,
        *,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._session = session
        self._base = (
            f"{management_url.rstrip('/')}/workspaces/{segment(workspace_id, 'workspace id')}"
            "/webservices"
        )
        self._token = token
        self._policy = policy or RetryPolicy()
        self._timeout = timeout_seconds

    def _url(self, service_id: str, name: str | None = None) -> str:
        url = f"{self._base}/{segment(service_id, 'web service id')}/endpoints"
        return url if name is None else f"{url}/{name}"

    async def _call(self, method: str, url: str, body: object = None) -> JsonReply:
        # Every management call here is idempotent: PUT/PATCH set state, GET/DELETE are safe.
        return await with_retries(
            lambda: request_json(
                self._session,
                method,
                url,
                token=self._token,
                timeout_seconds=self._timeout,
                json_body=body,
            ),
            self._policy,
            idempotent=True,
        )

    @staticmethod
    def _endpoint(reply: JsonReply, url: str) -> Endpoint:
        try:
            return Endpoint.model_validate(reply.body)
        except ValidationError as exc:
            raise invalid_response(exc, method="GET", url=url) from exc

    async def get_endpoint(self, service_id: str, name: str) -> Endpoint | None:
        """The endpoint, or ``None`` when the service has no endpoint of that name."""
        url = self._url(service_id, _endpoint_name(name))
        try:
            reply = await self._call("GET", url)
        except NotFoundError:
            return None
        return self._endpoint(reply, url)

    async def list_services(self) -> list[WebServiceBrief]:
        """The workspace's web services (id and name)."""
        reply = await self._call("GET", self._base)
        try:
            return _SERVICES.validate_python(reply.body)
        except ValidationError as exc:
            raise invalid_response(exc, method="GET", url=self._base) from exc

    async def get_service(self, service_id: str) -> WebServiceBrief | None:
        """The web service, or ``None`` when the workspace has none with that id."""
        url = f"{self._base}/{segment(service_id, 'web service id')}"
        try:
            reply = await self._call("GET", url)
        except NotFoundError:
            return None
        try:
            return WebServiceBrief.model_validate(reply.body)
        except ValidationError as exc:
            raise invalid_response(exc, method="GET", url=url) from exc

    async def list_endpoints(self, service_id: str) -> list[Endpoint]:
        """Every endpoint of the web service (the first is ``default``)."""
        url = self._url(service_id)
        reply = await self._call("GET", url)
        try:
            return _ENDPOINTS.validate_python(reply.body)
        except ValidationError as exc:
            raise invalid_response(exc, method="GET", url=url) from exc

    async def create_endpoint(
        self,
        service_id: str,
        name: str,
        *,
        description: str = "",
        throttle_level: ThrottleLevel = "High",
        max_concurrent_calls: int = 20,
    ) -> None:
        """PUT the endpoint (created, or accepted as is when it exists), without reading it."""
        if not 1 <= max_concurrent_calls <= 200:
            raise ValueError("max_concurrent_calls must be between 1 and 200")
        url = self._url(service_id, _endpoint_name(name))
        body = {
            "Description": description,
            "ThrottleLevel": throttle_level,
            "MaxConcurrentCalls": max_concurrent_calls,
        }
        await self._call("PUT", url, body)

    async def patch_model(
        self, service_id: str, name: str, resource_name: str, location: BlobLocation
    ) -> None:
        """Point the endpoint's trained-model resource at ``location`` (repeatable)."""
        url = self._url(service_id, _endpoint_name(name, patching=True))
        body = {"Resources": [{"Name": resource_name, "Location": location.to_payload()}]}
        await self._call("PATCH", url, body)

    async def delete_endpoint(self, service_id: str, name: str) -> None:
        """Delete the endpoint; one that is already gone is fine."""
        try:
            await self._call("DELETE", self._url(service_id, _endpoint_name(name)))
        except NotFoundError:
            return
