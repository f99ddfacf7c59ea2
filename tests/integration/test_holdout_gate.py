"""The champion/challenger gate end to end: the real API, workers, Redis, Azurite and the
emulator's BES scoring on predictive endpoints. A candidate is judged against the deployed
model on the same fresh held-out rows: deployed when it does better on drifted data, kept
on staging only when its labels carry no signal, and a holdout too small falls back."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from emulator import datagen
from emulator.training import parse_csv
from producer.api.app import create_app
from producer.devtools.emulated import predictive_service_ids, worker_env
from tests.integration.conftest_api import ADMIN, make_settings
from tests.integration.fleet import RESOURCE, Fleet, until
from worker.blobs import training_data_path
from worker.schemas import Tenant
from worker.staging import staging_endpoint_for

pytestmark = pytest.mark.timeout(240)
Api = TestClient[web.Request, web.Application]
SCORING = "Bike Rental Scoring"


def start_workers(fleet: Fleet, count: int = 1) -> None:
    """Workers that score as soon as the staging endpoint is PATCHed (the emulator serves a
    PATCHed model at once) and poll scoring jobs often."""
    fleet.run_workers(
        count,
        RETRAINQ_SCORING__STAGING_SETTLE_SECONDS="0",
        RETRAINQ_SCORING__POLL_SECONDS="0.2",
    )


def data_at(path: str) -> Callable[[Tenant], Tenant]:
    """A tenant change pointing the tenant at the data blob ``path``."""
    return lambda tenant: tenant.model_copy(update={"data_path": path})


@pytest.fixture
async def api(fleet: Fleet) -> AsyncIterator[Api]:
    """The API on the fleet's Redis and container, knowing the emulator's services."""
    services = json.loads(
        worker_env(fleet.config, fleet.emulator_url)["RETRAINQ_TRAINING_SERVICES"]
    )
    settings = make_settings(
        fleet.redis_url,
        fleet.blob_connection_string,
        training_services=services,
        blob={"connection_string": fleet.blob_connection_string, "container": "retrainq"},
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


def shuffled(text: str, seed: int = 5) -> str:
    """The CSV with its label column shuffled: the rows keep their features, not their label."""
    rows = parse_csv(text)
    labels = [row["cnt"] for row in rows]
    random.Random(seed).shuffle(labels)
    columns = list(rows[0])
    lines = [",".join(columns)]
    lines += [
        ",".join(label if c == "cnt" else row[c] for c in columns)
        for row, label in zip(rows, labels, strict=True)
    ]
    return "\n".join(lines) + "\n"


async def onboard(fleet: Fleet, api: Api, tenant_id: str, gate: dict[str, Any]) -> str:
    """Onboard a classic tenant through the API with data v1; returns its first run's id."""
    path = await fleet.upload(tenant_id, version=1, rows=300)
    body = {
        "id": tenant_id,
        "target": {
            "kind": "classic",
            "web_service_id": predictive_service_ids(fleet.config)["bike-rental"],
            "resource_name": RESOURCE,
        },
        "data_path": path,
        "gate": gate,
    }
    answer = await api.post("/v1/tenants", json=body, headers=ADMIN)
    assert answer.status == 201, await answer.text()
    created = await answer.json()
    assert created["tenant"]["gate"]["evaluation"] == "holdout"
    return str(created["run"]["id"])


async def finished(api: Api, run_id: str, within: float = 150) -> dict[str, Any]:
    """The run as ``GET /v1/runs/{id}`` shows it once it has ended."""
    seen: dict[str, Any] = {}

    async def ended() -> bool:
        seen.update(await (await api.get(f"/v1/runs/{run_id}", headers=ADMIN)).json())
        return seen["state"] in ("succeeded", "rejected", "failed", "cancelled")

    await until(ended, within=within, every=0.3)
    return seen


async def retrain_on(fleet: Fleet, api: Api, tenant_id: str, text: str) -> dict[str, Any]:
    """Point the tenant at new data (v2) and retrain it through the API; the ended run."""
    path = training_data_path(tenant_id, "v2")
    await fleet.blobs.upload(path, text.encode())
    patched = await api.patch(f"/v1/tenants/{tenant_id}", json={"data_path": path}, headers=ADMIN)
    assert patched.status == 200, await patched.text()
    answer = await api.post(f"/v1/tenants/{tenant_id}/retrains", headers=ADMIN)
    assert answer.status == 202, await answer.text()
    return await finished(api, (await answer.json())["run"]["id"])


async def served(fleet: Fleet, web_service_id: str, endpoint: str) -> str:
    """The model blob an endpoint of the predictive web service serves."""
    workspace = fleet.config["workspaces"][0]
    url = (
        f"{fleet.emulator_url}/workspaces/{workspace['id']}/webservices/"
        f"{web_service_id}/endpoints/{endpoint}"
    )
    headers = {"Authorization": f"Bearer {workspace['authorization_token']}"}
    async with fleet.http.get(url, headers=headers) as reply:
        assert reply.status == 200, await reply.text()
        body = await reply.json()
    return str(body["Resources"][0]["Location"]["RelativeLocation"])


async def tenant_of(api: Api, tenant_id: str) -> dict[str, Any]:
    """The tenant as the API shows it."""
    body: dict[str, Any] = await (await api.get(f"/v1/tenants/{tenant_id}", headers=ADMIN)).json()
    return body


async def scoring_starts(fleet: Fleet, run: dict[str, Any]) -> list[int]:
    """How many scoring jobs the emulator started per scored blob of the run."""
    stats = await fleet.emulator("GET", "/_emulator/stats")
    by_output = stats["web_services"][SCORING]["started_jobs_by_output"]
    return [by_output.get(f"retrainq/{job['output_path']}", 0) for job in run["scoring_jobs"]]


async def test_a_candidate_better_on_drifted_rows_is_deployed_and_served(
    fleet: Fleet, api: Api
) -> None:
    """(a) The new data drifted: the deployed model is poor on its held-out rows, the
    candidate better on the same rows, so it is deployed and the live endpoint serves it."""
    start_workers(fleet)
    first = await finished(api, await onboard(fleet, api, "drifty", {"holdout": {"label": "cnt"}}))
    assert first["state"] == "succeeded", first["error"]
    assert first["decision"]["evaluation"] == "holdout"
    assert first["decision"]["comparison"]["champion_metrics"] is None  # nothing deployed yet
    run = await retrain_on(
        fleet, api, "drifty", datagen.bike_rental_csv("drifty", 300, seed=3, drift=True)
    )
    assert run["state"] == "succeeded", run["error"]
    decision = run["decision"]
    comparison = decision["comparison"]
    assert decision["accepted"]
    assert decision["value"] > decision["baseline"]
    assert comparison["holdout_rows"] == run["holdout"]["holdout_rows"] > 20
    assert comparison["champion_model"] == first["outputs"]["model_path"]
    assert comparison["challenger_model"] == run["outputs"]["model_path"]
    tenant = await tenant_of(api, "drifty")
    service = tenant["target"]["web_service_id"]
    assert run["outputs"]["model_path"] in await served(fleet, service, tenant["endpoint_name"])
    assert run["outputs"]["model_path"] in await served(
        fleet, service, staging_endpoint_for("drifty")
    )
    assert await scoring_starts(fleet, run) == [1, 1]
    models = await (await api.get("/v1/tenants/drifty/models", headers=ADMIN)).json()
    assert models["current"]["decision"]["comparison"]["difference"] == comparison["difference"]


async def test_a_candidate_trained_on_shuffled_labels_is_rejected_and_the_old_model_serves(
    fleet: Fleet, api: Api
) -> None:
    """(b) The new labels carry no signal: the candidate misses the gate on the held-out
    rows, stays on staging only, and the live endpoint still serves the deployed model."""
    start_workers(fleet)
    gate = {"holdout": {"label": "cnt"}, "threshold": 0.3}
    first = await finished(api, await onboard(fleet, api, "noisy", gate))
    assert first["state"] == "succeeded", first["error"]
    run = await retrain_on(fleet, api, "noisy", shuffled(fleet.csv("noisy", 300)))
    assert run["state"] == "rejected", run["error"]
    decision = run["decision"]
    assert not decision["accepted"]
    assert decision["comparison"]["champion_metrics"] is not None
    assert "held-out rows" in decision["reason"]
    tenant = await tenant_of(api, "noisy")
    assert tenant["deployed"]["run_id"] == first["id"]
    service = tenant["target"]["web_service_id"]
    assert first["outputs"]["model_path"] in await served(fleet, service, tenant["endpoint_name"])
    assert run["outputs"]["model_path"] in await served(
        fleet, service, staging_endpoint_for("noisy")
    )
    assert await scoring_starts(fleet, run) == [1, 1]


async def test_a_holdout_below_the_minimum_says_so_and_falls_back_to_reported(
    fleet: Fleet, api: Api
) -> None:
    """(c) 300 rows cannot hold out 1,000: the run records why, trains on every row and is
    judged on its reported evaluation; no scoring job is started."""
    start_workers(fleet)
    gate = {"holdout": {"label": "cnt", "min_rows": 1000}}
    run = await finished(api, await onboard(fleet, api, "tiny", gate))
    assert run["state"] == "succeeded", run["error"]
    assert run["evaluation"] == "reported"
    assert "fewer than the minimum 1000" in run["evaluation_note"]
    assert run["decision"]["evaluation"] == "reported"
    assert run["decision"]["note"] == run["evaluation_note"]
    assert run["scoring_jobs"] == []
    stats = await fleet.emulator("GET", "/_emulator/stats")
    assert stats["web_services"][SCORING]["jobs_created"] == 0
    trained = stats["web_services"]["Bike Rental Training"]["started_jobs_by_output"]
    assert trained == {f"retrainq/{run['outputs']['model_path']}": 1}
