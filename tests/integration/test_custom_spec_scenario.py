"""A schema the emulator does not ship, end to end: the emulator runs a config file with a
diabetes regression spec, and retrainq (the real API with its preflight, a worker, Redis and
Azurite) onboards tenants on it, takes their data, retrains, judges candidates on held-out
rows scored through BES, and deploys — configured from that file alone, as ``retrainq dev up
--emulator-config`` configures the local stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from emulator.training import Model, parse_csv
from producer.api.app import create_app
from producer.devtools.emulated import predictive_service_ids, training_services
from tests.custom_spec import DIABETES, FEATURES, custom_emulator, diabetes_csv
from tests.integration.conftest_api import ADMIN, ApiTestClient, bearer, make_settings
from tests.integration.fleet import Fleet

pytestmark = pytest.mark.timeout(300)
TERMINAL = {"succeeded", "rejected", "failed", "cancelled"}


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The emulator serving the custom config file (the ``fleet`` and its workers use it)."""
    with custom_emulator(tmp_path_factory.mktemp("custom")) as url:
        yield url


@pytest.fixture
async def api(
    fleet: Fleet, redis_url: str, blob_connection_string: str
) -> AsyncIterator[ApiTestClient]:
    """The real API, its preflight checking targets against the custom emulator."""
    workspace, arm = fleet.config["workspaces"][0], fleet.config["arm"]
    settings = make_settings(
        redis_url,
        blob_connection_string,
        blob={"connection_string": blob_connection_string, "container": "retrainq"},
        preflight=True,
        training_services=training_services(fleet.config, fleet.emulator_url),
        azureml={
            "management_url": fleet.emulator_url,
            "arm_url": fleet.emulator_url,
            "workspace_id": workspace["id"],
            "workspace_token": workspace["authorization_token"],
            "subscription_id": arm["subscription_id"],
            "resource_group": arm["resource_groups"][0],
            "arm_token": arm["token"],
        },
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def call(api: ApiTestClient, method: str, path: str, status: int, **kwargs: Any) -> Any:
    """One API call that must answer ``status``; its JSON body."""
    response = await api.request(method, path, **kwargs)
    assert response.status == status, await response.text()
    return await response.json()


async def ended(api: ApiTestClient, run_id: str, key: str, within: float = 180) -> Any:
    """The run once it has ended (read through the API)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        run = await call(api, "GET", f"/v1/runs/{run_id}", 200, headers=bearer(key))
        if run["state"] in TERMINAL:
            return run
        await asyncio.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end within {within:g}s")


async def test_tenants_on_a_custom_spec_retrain_and_deploy(
    fleet: Fleet, api: ApiTestClient
) -> None:
    """A classic and a new-service tenant on the diabetes spec: onboard, upload, retrain; the
    runs succeed and each tenant's runtime serves the model its run trained."""
    targets = {
        "clinic-a": {
            "kind": "classic",
            "web_service_id": predictive_service_ids(fleet.config)["diabetes"],
            "resource_name": DIABETES.resource_name,
        },
        "clinic-b": {"kind": "new", "template_service": "diabetes-template"},
    }
    keys, runs = {}, {}
    data = {"clinic-a": diabetes_csv(0, 300), "clinic-b": diabetes_csv(142)}
    for tenant_id, target in targets.items():
        body = {"id": tenant_id, "target": target, "train": False}
        created = await call(api, "POST", "/v1/tenants", 201, json=body, headers=ADMIN)
        assert created["tenant"]["training_service"] == "default"
        keys[tenant_id] = created["api_key"]
        own = bearer(created["api_key"])
        uploaded = await call(
            api, "PUT", f"/v1/tenants/{tenant_id}/data", 200, data=data[tenant_id], headers=own
        )
        assert uploaded["columns"] == [*FEATURES, "target"]
        accepted = await call(api, "POST", f"/v1/tenants/{tenant_id}/retrains", 202, headers=own)
        runs[tenant_id] = accepted["run"]["id"]

    fleet.run_workers(1)
    probe = [{c: r[c] for c in FEATURES} for r in parse_csv(diabetes_csv(300, 320))]
    for tenant_id, run_id in runs.items():
        run = await ended(api, run_id, keys[tenant_id])
        assert run["state"] == "succeeded", run
        models = await call(
            api, "GET", f"/v1/tenants/{tenant_id}/models", 200, headers=bearer(keys[tenant_id])
        )
        assert models["current"]["run_id"] == run_id
        tenant = await fleet.store.get_tenant(tenant_id)
        assert tenant is not None
        deployed = Model.from_json(await fleet.blobs.download(models["current"]["model_path"]))
        assert deployed.spec_name == "diabetes"
        assert 0 < deployed.training_rows < len(parse_csv(data[tenant_id]))
        assert await fleet.score(tenant, probe) == deployed.predict(probe)
    stats = await fleet.training_stats("Diabetes Training")
    assert stats["jobs_failed"] == 0


async def test_a_custom_spec_tenant_is_judged_on_held_out_rows(
    fleet: Fleet, api: ApiTestClient
) -> None:
    """With the spec's label named in its gate, a classic tenant's second retrain scores the
    deployed model and the candidate through BES on the same held-out diabetes rows; the
    candidate is deployed and served, and each scored blob was written by one started job."""
    target = {
        "kind": "classic",
        "web_service_id": predictive_service_ids(fleet.config)["diabetes"],
        "resource_name": DIABETES.resource_name,
    }
    body = {
        "id": "clinic-h",
        "target": target,
        "train": False,
        # Both models learn the same relation, and the held-out rows are drawn by the run's
        # (random) id: a wide allowance keeps the decision off the sampling noise.
        "gate": {"holdout": {"label": "target"}, "max_regression": 1.0},
    }
    created = await call(api, "POST", "/v1/tenants", 201, json=body, headers=ADMIN)
    own = bearer(created["api_key"])
    fleet.run_workers(1)
    runs = []
    for part in (diabetes_csv(0, 200), diabetes_csv(200)):
        await call(api, "PUT", "/v1/tenants/clinic-h/data", 200, data=part, headers=own)
        accepted = await call(api, "POST", "/v1/tenants/clinic-h/retrains", 202, headers=own)
        runs.append(await ended(api, accepted["run"]["id"], created["api_key"]))
    first, second = runs
    assert [r["state"] for r in runs] == ["succeeded", "succeeded"], runs
    decision = second["decision"]
    assert (decision["evaluation"], decision["accepted"]) == ("holdout", True)
    comparison = decision["comparison"]
    assert comparison["champion_model"] == first["outputs"]["model_path"]
    assert comparison["challenger_model"] == second["outputs"]["model_path"]
    assert comparison["holdout_rows"] > 30
    scored = parse_csv(await fleet.blobs.download(comparison["challenger_scored"]))
    assert len(scored) == comparison["holdout_rows"]
    assert list(scored[0])[-2:] == ["target", "Scored Labels"]
    stats = await fleet.emulator("GET", "/_emulator/stats")
    by_output = stats["web_services"]["Diabetes Scoring"]["started_jobs_by_output"]
    outputs = [f"retrainq/{job['output_path']}" for job in second["scoring_jobs"]]
    assert [by_output.get(path) for path in outputs] == [1, 1]
    tenant = await fleet.store.get_tenant("clinic-h")
    assert tenant is not None
    deployed = Model.from_json(await fleet.blobs.download(second["outputs"]["model_path"]))
    probe = [{c: r[c] for c in FEATURES} for r in parse_csv(diabetes_csv(0, 10))]
    assert await fleet.score(tenant, probe) == deployed.predict(probe)
