"""One look at an Azure ML v2 service's workspace and datastore, for the checks before use
(``retrainq doctor``, the onboarding preflight): both exist, and where the datastore points;
and at a serving pool's endpoint and deployment (the preflight of a pool tenant).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from pydantic import SecretStr

from worker.azureml.http import request_json
from worker.settings import AzureMLV2Config, V2PoolConfig


@dataclass(frozen=True)
class WorkspaceFacts:
    """What the workspace and its datastore say about themselves."""

    location: str
    container: str


def _field(body: object, *path: str) -> str:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return str(body) if body is not None else "?"


def workspace_url(arm_url: str, config: AzureMLV2Config) -> str:
    """The workspace's ARM URL on ``arm_url`` (the service's own ARM base first)."""
    return (config.arm_url or arm_url).rstrip("/") + config.workspace_path()


async def _get_both(
    session: aiohttp.ClientSession,
    urls: tuple[str, str],
    token: SecretStr,
    timeout_seconds: float,
) -> tuple[object, object]:
    """The bodies of two GETs, one after the other (the second only when the first answered)."""
    bodies = []
    for url in urls:
        reply = await request_json(
            session, "GET", url, token=token, timeout_seconds=timeout_seconds
        )
        bodies.append(reply.body)
    return bodies[0], bodies[1]


async def look(
    session: aiohttp.ClientSession,
    arm_url: str,
    config: AzureMLV2Config,
    token: SecretStr,
    timeout_seconds: float,
) -> WorkspaceFacts:
    """GET the workspace, then its datastore; ``NotFoundError`` (its ``url`` names which is
    missing) or another ``AzureMLError`` when they cannot be read."""
    base = workspace_url(arm_url, config)
    api = f"api-version={config.api_version}"
    urls = (f"{base}?{api}", f"{base}/datastores/{config.datastore}?{api}")
    workspace, store = await _get_both(session, urls, token, timeout_seconds)
    return WorkspaceFacts(
        location=_field(workspace, "location"),
        container=_field(store, "properties", "containerName"),
    )


def missing_part(url: str | None) -> str:
    """Which read a ``NotFoundError`` of ``look`` was: ``datastore`` or ``workspace``."""
    return "datastore" if "/datastores/" in (url or "") else "workspace"


@dataclass(frozen=True)
class PoolFacts:
    """What a pool's endpoint and its deployment say about themselves."""

    endpoint_state: str
    deployment_state: str
    traffic: int  # the deployment's share of the endpoint's live traffic, in percent


async def look_pool(
    session: aiohttp.ClientSession,
    arm_url: str,
    config: AzureMLV2Config,
    pool: V2PoolConfig,
    token: SecretStr,
    timeout_seconds: float,
) -> PoolFacts:
    """GET the pool's online endpoint, then its deployment; ``NotFoundError`` (its ``url``
    names which is missing) or another ``AzureMLError`` when they cannot be read."""
    base = f"{workspace_url(arm_url, config)}/onlineEndpoints/{pool.endpoint}"
    api = f"api-version={config.api_version}"
    urls = (f"{base}?{api}", f"{base}/deployments/{pool.deployment}?{api}")
    endpoint, deployment = await _get_both(session, urls, token, timeout_seconds)
    props = endpoint.get("properties") if isinstance(endpoint, dict) else None
    weights = props.get("traffic") if isinstance(props, dict) else None
    share = weights.get(pool.deployment, 0) if isinstance(weights, dict) else 0
    return PoolFacts(
        endpoint_state=_field(endpoint, "properties", "provisioningState"),
        deployment_state=_field(deployment, "properties", "provisioningState"),
        traffic=share if isinstance(share, int) else 0,
    )


def missing_pool_part(url: str | None) -> str:
    """Which read a ``NotFoundError`` of ``look_pool`` was: ``deployment`` or ``endpoint``."""
    return "deployment" if "/deployments/" in (url or "") else "endpoint"
