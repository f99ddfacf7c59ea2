"""One look at an Azure ML v2 service's workspace and datastore, for the checks before use
(``retrainq doctor``, the onboarding preflight): both exist, and where the datastore points.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from pydantic import SecretStr

from worker.azureml.http import request_json
from worker.settings import AzureMLV2Config


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
    workspace = await request_json(
        session, "GET", f"{base}?{api}", token=token, timeout_seconds=timeout_seconds
    )
    store = await request_json(
        session,
        "GET",
        f"{base}/datastores/{config.datastore}?{api}",
        token=token,
        timeout_seconds=timeout_seconds,
    )
    return WorkspaceFacts(
        location=_field(workspace.body, "location"),
        container=_field(store.body, "properties", "containerName"),
    )


def missing_part(url: str | None) -> str:
    """Which read a ``NotFoundError`` of ``look`` was: ``datastore`` or ``workspace``."""
    return "datastore" if "/datastores/" in (url or "") else "workspace"
