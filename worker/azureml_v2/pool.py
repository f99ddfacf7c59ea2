"""Deploys to a serving pool: a tenant's registry pointer moved to its run's version, checked by
scoring through the pool's endpoint (``docs/AZUREML-V2.md`` §5-6).

A deploy takes two bounded steps. The first registers the run's model (version ``{seq}``) and
PUTs the tenant's container with the pointer tag on that version, unless a run with a higher
sequence number pointed it already (the tag ``retrainq-deployed-by`` keeps the sequence of
the run that set the pointer, so a late old run never moves it back; a rollback run has a new,
higher sequence and points at the version it restores). The next steps score a few of the
tenant's rows through the pool's endpoint until the answer names the new version: the pooled
scorer reads pointers with a short cache, so that is seconds later; until then the deploy is
still in progress. Removing a tenant archives its container (its versions stay, as history).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr

from worker.azureml.errors import PermanentError, invalid_response
from worker.azureml.http import request_json
from worker.azureml.retry import with_retries
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.registry import POINTER_TAG, ModelRegistry, model_name
from worker.blobs import BlobStore
from worker.run.actions import DeployProgress
from worker.run.model import Run
from worker.settings import V2PoolConfig

log = structlog.get_logger("retrainq.azureml_v2.pool")

DEPLOYED_BY = "retrainq-deployed-by"
POOL_TAG = "retrainq-pool"
SAMPLE_BYTES = 64 * 1024


def pointer_tags(
    current: Mapping[str, str], tenant_id: str, pool: str, version: str, seq: int
) -> dict[str, str]:
    """The container's tags with the pointer on ``version``, set by the run of ``seq``."""
    return {
        **current,
        "retrainq-tenant": tenant_id,
        POOL_TAG: pool,
        POINTER_TAG: version,
        DEPLOYED_BY: str(seq),
    }


def pointed_by(tags: Mapping[str, str]) -> int:
    """The sequence of the run that set the pointer (0: none yet)."""
    value = tags.get(DEPLOYED_BY, "")
    return int(value) if value.isdigit() else 0


def assign_pool(pools: Mapping[str, V2PoolConfig], tenants: Mapping[str, int]) -> str | None:
    """The pool a new tenant joins: the one with the most room left (``None``: all full)."""
    room = {name: pool.capacity - tenants.get(name, 0) for name, pool in pools.items()}
    open_pools = sorted((-left, name) for name, left in room.items() if left > 0)
    return open_pools[0][1] if open_pools else None


def sample_rows(data: bytes, count: int) -> list[dict[str, str]]:
    """The first ``count`` complete rows of a CSV's first bytes, as column → value."""
    text = data.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if len(data) >= SAMPLE_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    return [dict(row) for _, row in zip(range(count), reader, strict=False)]


@dataclass(frozen=True)
class PoolAnswer:
    """What the pool's endpoint answered for a tenant's rows."""

    version: str
    predictions: list[dict[str, Any]]


class PoolEndpoint:
    """A pool's online endpoint: its scoring URI and key from ARM (read once), then scoring."""

    def __init__(self, arm: V2Arm, workspace_url: str, api_version: str, pool: V2PoolConfig):
        self.arm = arm
        self.url = f"{workspace_url}/onlineEndpoints/{pool.endpoint}"
        self.api = f"api-version={api_version}"
        self.deployment = pool.deployment
        self._access: tuple[str, SecretStr] | None = None

    async def access(self) -> tuple[str, SecretStr]:
        """The endpoint's scoring URI and primary key."""
        if self._access is None:
            endpoint = (await self.arm.call("GET", f"{self.url}?{self.api}")).body
            keys = (await self.arm.call("POST", f"{self.url}/listKeys?{self.api}")).body
            uri = (
                endpoint.get("properties", {}).get("scoringUri")
                if isinstance(endpoint, dict)
                else None
            )
            key = keys.get("primaryKey") if isinstance(keys, dict) else None
            if not isinstance(uri, str) or not isinstance(key, str):
                raise invalid_response("the pool endpoint has no scoringUri or primaryKey")
            self._access = (uri, SecretStr(key))
        return self._access

    async def score(
        self, session: aiohttp.ClientSession, tenant_id: str, rows: list[dict[str, str]]
    ) -> PoolAnswer:
        """Score ``rows`` for the tenant with the version its pointer names."""
        uri, key = await self.access()
        body = {"tenant": tenant_id, "rows": rows}

        async def once() -> object:
            reply = await request_json(
                session, "POST", uri, token=key, timeout_seconds=self.arm.timeout, json_body=body
            )
            return reply.body

        answer = await with_retries(once, self.arm.policy, idempotent=True)
        if not isinstance(answer, dict) or not isinstance(answer.get("version"), str):
            raise invalid_response("the pool's answer names no version")
        predictions = answer.get("predictions")
        return PoolAnswer(answer["version"], predictions if isinstance(predictions, list) else [])


class PoolTarget:
    """Deploys runs' models to tenants of one pool and takes them back out."""

    def __init__(
        self,
        name: str,
        pool: V2PoolConfig,
        registry: ModelRegistry,
        endpoint: PoolEndpoint,
        blobs: BlobStore,
    ) -> None:
        self.name = name
        self.pool = pool
        self.registry = registry
        self.endpoint = endpoint
        self.blobs = blobs

    async def deploy(self, run: Run, restores: Run | None = None) -> DeployProgress:
        """One step of deploying ``run`` (or, for a rollback run, the run it ``restores``)."""
        source = restores or run
        version = str(source.seq)
        if not run.deploy_submitted:
            return await self._point(run, source, version)
        return await self._verify(run, version)

    async def _point(self, run: Run, source: Run, version: str) -> DeployProgress:
        if source is run:
            await self.registry.register(run)
        name = model_name(run.tenant_id)
        container = await self.registry.client.get_container(name)
        props = (container or {}).get("properties") or {}
        tags = {str(k): str(v) for k, v in (props.get("tags") or {}).items()}
        if pointed_by(tags) > run.seq:
            note = f"superseded: the pointer was set by run sequence {pointed_by(tags)}"
            log.info("v2.pointer_superseded", pointed_by=pointed_by(tags))
            return DeployProgress(done=True, deployed=False, note=note)
        if pointed_by(tags) == run.seq:  # this run's earlier step set it: go on to verify
            return DeployProgress(done=False, submitted=True)
        body = {
            "properties": {
                "description": f"retrainq tenant {run.tenant_id}",
                "tags": pointer_tags(tags, run.tenant_id, self.name, version, run.seq),
                "properties": dict(props.get("properties") or {}),
                "isArchived": False,
            }
        }
        await self.registry.client.put_container(name, body)
        log.info("v2.pointer_set", version=version, pool=self.name)
        return DeployProgress(done=False, submitted=True)

    async def _verify(self, run: Run, version: str) -> DeployProgress:
        if run.data_path is None:
            raise PermanentError("a v2 pool deploy needs the tenant's data rows", code="NoData")
        data = b""
        async for chunk in self.blobs.chunks(run.data_path):
            data += chunk
            if len(data) >= SAMPLE_BYTES:
                data = data[:SAMPLE_BYTES]
                break
        rows = sample_rows(data, self.pool.verify_rows)
        answer = await self.endpoint.score(self.endpoint.arm.session, run.tenant_id, rows)
        if answer.version != version:
            log.info("v2.pool_not_yet", served=answer.version, version=version)
            return DeployProgress(done=False, submitted=True)
        log.info("v2.pool_verified", version=version, rows=len(rows))
        return DeployProgress(done=True, deployed=True)

    async def remove(self, tenant_id: str) -> None:
        """Archive the tenant's container without a pointer: the pool stops serving it."""
        name = model_name(tenant_id)
        container = await self.registry.client.get_container(name)
        if container is None:
            return
        props = container.get("properties") or {}
        tags = {
            str(k): str(v)
            for k, v in (props.get("tags") or {}).items()
            if k not in (POINTER_TAG, DEPLOYED_BY)
        }
        body = {
            "properties": {
                "description": props.get("description") or f"retrainq tenant {tenant_id}",
                "tags": tags,
                "properties": dict(props.get("properties") or {}),
                "isArchived": True,
            }
        }
        await self.registry.client.put_container(name, body)
        log.info("v2.tenant_archived", pool=self.name)
