"""The tenants' models in the workspace's model registry: one container per tenant, one
version per deployed run, and the tenant's model history rebuilt from them.

A run's model becomes version ``{seq}`` of container ``rq-{tenant}`` (``PUT
models/rq-{tenant}/versions/{seq}``, not a long-running operation). Its ``modelUri`` is the
run's model blob through the service's datastore; its tags name the tenant, run, sequence and
data version (searchable with ``tags=`` filters), and its properties hold what the history
needs: the model path, the metrics and the gate's decision as JSON, and when it was
registered. The body is built only from the run record, so a repeated PUT (a lost reply, a
step run again) is the same update (200) and never a second version. The container's tag
``retrainq-deployed-version`` is the pointer a pooled scorer serves (``docs/AZUREML-V2.md`` §4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from worker.azureml.errors import NotFoundError, invalid_response
from worker.azureml.http import segment
from worker.azureml_v2.arm import V2Arm
from worker.evaluate import Decision
from worker.run.model import Run, RunState
from worker.schemas import DeployedModel
from worker.settings import AzureMLV2Config

POINTER_TAG = "retrainq-deployed-version"
MAX_PAGES = 1000


def model_name(tenant_id: str) -> str:
    """The tenant's model container: ``rq-{tenant}``."""
    return f"rq-{tenant_id}"


def model_uri(config: AzureMLV2Config, path: str) -> str:
    """A blob of the service's datastore in the long ``azureml://subscriptions/…`` form."""
    return (
        f"azureml://subscriptions/{config.subscription_id}/resourceGroups/"
        f"{config.resource_group}/workspaces/{config.workspace}/datastores/"
        f"{config.datastore}/paths/{path.lstrip('/')}"
    )


def registered_at(run: Run) -> datetime:
    """When the run's model counts as registered: when it began deploying (recorded once)."""
    return run.phases.get(RunState.DEPLOYING.value, run.updated_at)


def version_body(run: Run, config: AzureMLV2Config) -> dict[str, Any]:
    """The version of ``run``'s model; the same bytes for every PUT of one run."""
    properties = {
        "retrainq.run": run.id,
        "retrainq.seq": str(run.seq),
        "retrainq.data_version": str(run.data_version),
        "retrainq.model_path": run.outputs.model_path,
        "retrainq.metrics": json.dumps(run.metrics, sort_keys=True),
        "retrainq.registered_at": registered_at(run).isoformat(),
    }
    if run.data_path is not None:
        properties["retrainq.data_path"] = run.data_path
    if run.decision is not None:
        properties["retrainq.decision"] = run.decision.model_dump_json()
    body: dict[str, Any] = {
        "modelUri": model_uri(config, run.outputs.model_path),
        "modelType": "CustomModel",
        "description": f"{run.tenant_id} run {run.seq}",
        "tags": {
            "retrainq-tenant": run.tenant_id,
            "retrainq-run": run.id,
            "retrainq-seq": str(run.seq),
            "retrainq-data-version": str(run.data_version),
        },
        "properties": properties,
        "isArchived": False,
        "flavors": {},
    }
    if run.bes_job_id is not None:
        body["jobName"] = run.bes_job_id
    return {"properties": body}


@dataclass(frozen=True)
class RegisteredModel:
    """A version of a tenant's container as retrainq registered it."""

    version: str
    model: DeployedModel
    data_version: int
    archived: bool


def parse_version(payload: object) -> RegisteredModel | None:
    """A ``RegisteredModel`` from a version resource; ``None`` for versions retrainq did not
    register (no retrainq properties)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
        raise invalid_response("model version body has no properties")
    props = payload["properties"]
    user = props.get("properties")
    if not isinstance(user, dict) or "retrainq.run" not in user:
        return None
    try:
        decision = user.get("retrainq.decision")
        model = DeployedModel(
            run_id=str(user["retrainq.run"]),
            seq=int(user["retrainq.seq"]),
            model_path=str(user["retrainq.model_path"]),
            metrics=json.loads(user.get("retrainq.metrics") or "{}"),
            deployed_at=datetime.fromisoformat(str(user["retrainq.registered_at"])),
            decision=Decision.model_validate_json(decision) if decision else None,
        )
        data_version = int(user.get("retrainq.data_version", 0))
    except (KeyError, ValueError, ValidationError) as exc:
        raise invalid_response(f"model version properties are not retrainq's: {exc}") from exc
    return RegisteredModel(
        version=str(payload.get("name", model.seq)),
        model=model,
        data_version=data_version,
        archived=bool(props.get("isArchived")),
    )


def history(versions: list[RegisteredModel]) -> list[DeployedModel]:
    """The tenant's model history from its registered versions: newest (highest seq) first."""
    return [v.model for v in sorted(versions, key=lambda v: v.model.seq, reverse=True)]


class ModelsClient:
    """The model containers and versions of one workspace, through ARM within budget."""

    def __init__(self, arm: V2Arm, workspace_url: str, api_version: str) -> None:
        self._arm = arm
        self._base = f"{workspace_url}/models"
        self._api = f"api-version={api_version}"

    def url(self, name: str, version: str | None = None) -> str:
        """The container's URL, or one of its versions'."""
        path = f"{self._base}/{segment(name, 'model name')}"
        if version is not None:
            path += f"/versions/{segment(version, 'model version')}"
        return f"{path}?{self._api}"

    async def put_version(self, name: str, version: str, body: dict[str, Any]) -> object:
        """Create (201) or update (200) a version; repeating the same body is harmless."""
        return (await self._arm.call("PUT", self.url(name, version), body)).body

    async def put_container(self, name: str, body: dict[str, Any]) -> object:
        """Create or replace the container (its tags and properties as given)."""
        return (await self._arm.call("PUT", self.url(name), body)).body

    async def get_container(self, name: str) -> dict[str, Any] | None:
        """The container resource, or ``None`` when there is none."""
        try:
            body = (await self._arm.call("GET", self.url(name))).body
        except NotFoundError:
            return None
        if not isinstance(body, dict):
            raise invalid_response("model container body is not an object")
        return body

    async def list_versions(self, name: str, tags: str | None = None) -> list[object]:
        """Every version of the container (archived ones too), all pages."""
        url: str | None = f"{self._base}/{segment(name, 'model name')}/versions?{self._api}"
        url = f"{url}&listViewType=All"
        if tags:
            url += f"&tags={quote(tags)}"
        items: list[object] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            try:
                body = (await self._arm.call("GET", self._arm.same_origin(url))).body
            except NotFoundError:
                return items
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise invalid_response("model version list has no value array")
            items.extend(body["value"])
            link = body.get("nextLink")
            url = link if isinstance(link, str) and link else None
        return items

    async def delete_container(self, name: str) -> None:
        """Delete the container and its versions (one that is gone is fine)."""
        try:
            await self._arm.call("DELETE", self.url(name))
        except NotFoundError:
            return


class ModelRegistry:
    """Registers runs' models as versions of their tenants' containers and reads them back."""

    def __init__(self, client: ModelsClient, config: AzureMLV2Config) -> None:
        self.client = client
        self.config = config

    async def register(self, run: Run) -> RegisteredModel:
        """Make ``run``'s model version ``{seq}`` of its tenant's container (idempotent)."""
        name, version = model_name(run.tenant_id), str(run.seq)
        answer = await self.client.put_version(name, version, version_body(run, self.config))
        registered = parse_version(answer)
        if registered is None:
            raise invalid_response("the registered version lost retrainq's properties")
        return registered

    async def versions(self, tenant_id: str) -> list[RegisteredModel]:
        """The tenant's versions retrainq registered."""
        items = await self.client.list_versions(model_name(tenant_id))
        parsed = (parse_version(item) for item in items)
        return [version for version in parsed if version is not None]

    async def history(self, tenant_id: str) -> list[DeployedModel]:
        """The tenant's model history, rebuilt from the registry (newest first)."""
        return history(await self.versions(tenant_id))

    async def pointer(self, tenant_id: str) -> int | None:
        """The version the tenant's pointer tag names (``None``: none yet, or no container)."""
        container = await self.client.get_container(model_name(tenant_id))
        props = container.get("properties") if container else None
        tags = props.get("tags") if isinstance(props, dict) else None
        value = tags.get(POINTER_TAG) if isinstance(tags, dict) else None
        return int(value) if isinstance(value, str) and value.isdigit() else None
