"""Scoring on managed online endpoints (shared/PROTOCOL-V2 §4.4): ``POST /score/{endpoint}``.

The credential is ``Authorization: Bearer <key>`` (``authMode`` Key) or an AML token from
``token`` (AMLToken); 401 otherwise. ``azureml-model-deployment`` names the deployment (404
when it does not exist); without it live traffic picks one by its weights (seeded, so a run
repeats), 404 when no deployment has a positive weight. A deployment whose
``codeConfiguration.scoringScript`` is ``score.py`` runs retrainq's pooled scorer
(``deploy/azureml-v2/score.py``, loaded from its file once per deployment and built by its own
``from_environment`` from the deployment's environment variables). The emulator stands in for
the deployment's managed identity: it adds ``RETRAINQ_WORKSPACE_URL`` (this workspace),
``RETRAINQ_ARM_TOKEN`` and ``RETRAINQ_STORAGE_CONNECTION_STRING`` (the first datastore's
account). A scorer's ``{"error", "status"}`` answer is sent with that status; any other
deployment answers 424. The ``v2_scoring`` fault switch fails or slows scoring.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from emulator.errors import ApiError
from emulator.state import STATE, bearer_matches
from emulator.v2.state import V2_STATE, OnlineDeployment, OnlineEndpoint, V2State
from emulator.v2.workspace import PROVIDER

SCORE_PY = Path(__file__).resolve().parents[2] / "deploy" / "azureml-v2" / "score.py"
POOLED_SCRIPT = "score.py"
_MODULES = itertools.count(1)


def load_script(path: Path) -> ModuleType:
    """A fresh module object of the scoring script at ``path`` (its own globals)."""
    name = f"emulator_scorer_{next(_MODULES)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ApiError(424, "ModelError", f"The scoring script {path} cannot be loaded.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while they are built
    spec.loader.exec_module(module)
    return module


def _authorized(request: web.Request, endpoint: OnlineEndpoint) -> bool:
    header = request.headers.get("Authorization")
    mode = endpoint.body["properties"].get("authMode", "Key")
    if mode == "AMLToken":
        return bearer_matches(header, f"aml-{endpoint.keys[0]}")
    return any(bearer_matches(header, key) for key in endpoint.keys)


def pick(v2: V2State, endpoint: OnlineEndpoint, named: str | None) -> OnlineDeployment:
    """The deployment a request goes to: the one named, else by live traffic weights."""
    if named is not None:
        deployment = endpoint.deployments.get(named.lower()) or endpoint.deployments.get(named)
        if deployment is None:
            raise ApiError(404, "DeploymentNotFound", f"No deployment named '{named}'.")
        return deployment
    weights = {
        name: weight
        for name, weight in (endpoint.body["properties"].get("traffic") or {}).items()
        if weight > 0 and name in endpoint.deployments
    }
    if not weights:
        raise ApiError(404, "NoDeployment", "No deployment with positive weight.")
    chosen = v2.faults.scoring.random.choices(list(weights), weights=list(weights.values()))[0]
    return endpoint.deployments[chosen]


def scorer_environment(
    request: web.Request, v2: V2State, endpoint: OnlineEndpoint
) -> dict[str, str]:
    """What the pooled scorer reads from its environment, with the identity's stand-ins."""
    state = request.app[STATE]
    arm = state.config.arm
    workspace = (
        f"{state.base_url}/subscriptions/{arm.subscription_id}/resourceGroups/"
        f"{arm.resource_groups[0]}/providers/{PROVIDER}/workspaces/{endpoint.workspace}"
    )
    stores = [d for (ws, _), d in v2.datastores.items() if ws == endpoint.workspace]
    env = {"RETRAINQ_WORKSPACE_URL": workspace, "RETRAINQ_ARM_TOKEN": arm.token}
    if stores:
        env["RETRAINQ_STORAGE_CONNECTION_STRING"] = stores[0].connection_string
    return env


def scorer_of(
    request: web.Request, v2: V2State, endpoint: OnlineEndpoint, deployment: OnlineDeployment
) -> Any:
    """The deployment's pooled scorer (built on its first request)."""
    props = deployment.body.get("properties") or {}
    script = (props.get("codeConfiguration") or {}).get("scoringScript")
    if script != POOLED_SCRIPT:
        raise ApiError(424, "ModelError", f"The emulator cannot run scoring script {script!r}.")
    if deployment.scorer is None:
        module = load_script(Path(v2.config.scorer_script or SCORE_PY))
        env = {str(k): str(v) for k, v in (props.get("environmentVariables") or {}).items()}
        env.update(scorer_environment(request, v2, endpoint))
        module.__dict__["_SCORER"] = module.from_environment(env)
        deployment.scorer = module
    return deployment.scorer


async def score(request: web.Request) -> web.Response:
    """POST /score/{endpoint}: route to a deployment and run its scoring script."""
    v2 = request.app[V2_STATE]
    await v2.faults.scoring.before()
    name = request.match_info["endpoint"]
    endpoint = next((e for e in v2.endpoints.values() if e.name == name), None)
    if endpoint is None:
        raise ApiError(404, "EndpointNotFound", f"No endpoint '{name}'.")
    if not _authorized(request, endpoint):
        raise ApiError(401, "Unauthorized", "Invalid credentials provided.")
    deployment = pick(v2, endpoint, request.headers.get("azureml-model-deployment"))
    if deployment.state != "Succeeded":
        raise ApiError(424, "ModelError", f"Deployment '{deployment.name}' is not ready.")
    module = scorer_of(request, v2, endpoint, deployment)
    raw = await request.text()
    answer = await asyncio.to_thread(module.run, raw)
    deployment.scored += 1
    headers = {"azureml-model-deployment": deployment.name}
    if isinstance(answer, dict) and "error" in answer and isinstance(answer.get("status"), int):
        return web.json_response(answer, status=answer["status"], headers=headers)
    return web.Response(text=json.dumps(answer), content_type="application/json", headers=headers)


def add_routes(app: web.Application) -> None:
    """Register the scoring route."""
    app.router.add_post("/score/{endpoint}", score)
