"""The swagger.json of a web service runtime: its input columns and declared global parameters.

Classic endpoints serve it at ``{ApiLocation}/swagger.json`` (keyed like the runtime), new
services at their ``swaggerLocation``. ``definitions.input1.properties`` names the input
columns with their JSON types; ``definitions.GlobalParameters.properties`` the parameters a
BES job or RRS call may set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from worker.azureml.errors import invalid_response
from worker.azureml.http import request_json
from worker.azureml.retry import RetryPolicy, with_retries


@dataclass(frozen=True)
class ServiceSchema:
    """Input columns (name -> swagger type) and global parameter names of a runtime."""

    inputs: dict[str, str]
    global_parameters: frozenset[str]


def _properties(definitions: Mapping[str, Any], name: str) -> dict[str, Any]:
    found = definitions.get(name)
    if not isinstance(found, Mapping):
        return {}
    properties = found.get("properties")
    return dict(properties) if isinstance(properties, Mapping) else {}


def parse_swagger(payload: object, *, input_name: str = "input1") -> ServiceSchema:
    """The schema a swagger document describes; ``PermanentError`` when it is not one."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("definitions"), Mapping):
        raise invalid_response("swagger.json has no definitions")
    definitions = payload["definitions"]
    inputs = {
        str(name): str(spec.get("type", "string")) if isinstance(spec, Mapping) else "string"
        for name, spec in _properties(definitions, input_name).items()
    }
    parameters = frozenset(str(name) for name in _properties(definitions, "GlobalParameters"))
    return ServiceSchema(inputs=inputs, global_parameters=parameters)


async def fetch_schema(
    session: aiohttp.ClientSession,
    runtime_base: str,
    key: SecretStr,
    *,
    input_name: str = "input1",
    timeout_seconds: float = 5.0,
    policy: RetryPolicy | None = None,
) -> ServiceSchema:
    """GET ``{runtime_base}/swagger.json`` with the runtime's key and parse it."""
    url = f"{runtime_base.rstrip('/')}/swagger.json?api-version=2.0"
    reply = await with_retries(
        lambda: request_json(session, "GET", url, token=key, timeout_seconds=timeout_seconds),
        policy or RetryPolicy(),
        idempotent=True,
    )
    return parse_swagger(reply.body, input_name=input_name)
