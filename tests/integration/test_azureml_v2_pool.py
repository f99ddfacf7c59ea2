"""Deploys to a v2 serving pool against the emulator: the registry pointer moved by run
sequence, checked by scoring through the pool's endpoint (the pooled scorer), rollback and
removal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from emulator.config import BIKE_RENTAL
from emulator.datagen import bike_rental_csv
from emulator.training import parse_csv, train
from tests.integration.fleet import Fleet
from tests.integration.fleet import sample_rows as fleet_rows
from tests.integration.test_azureml_v2 import (
    SERVICE,
    services,
    settings,
    v2,
    v2_stats,
    with_v2_datastore,
)
from tests.unit.test_azureml_v2_registry import deployed_run
from worker.azureml.arm import StaticToken
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.pool import PoolEndpoint, PoolTarget, assign_pool, sample_rows
from worker.azureml_v2.registry import ModelRegistry, ModelsClient
from worker.run.model import Run
from worker.schemas import RunState
from worker.settings import V2PoolConfig

pytestmark = pytest.mark.timeout(120)

TENANT = "pool1"
POOL = V2PoolConfig(service="v2", endpoint="rq-pool-01", deployment="scorer-v1")


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    return await with_v2_datastore(fleet)


async def settle(fleet: Fleet, reply_of: Any) -> None:
    """Wait for the pool endpoint and its deployment to be provisioned."""
    for _ in range(200):
        endpoint = await v2(fleet, "GET", f"/onlineEndpoints/{POOL.endpoint}")
        deployments = await v2(fleet, "GET", f"/onlineEndpoints/{POOL.endpoint}/deployments")
        states = [endpoint["properties"]["provisioningState"]] + [
            d["properties"]["provisioningState"] for d in deployments["value"]
        ]
        if set(states) == {"Succeeded"} and reply_of(deployments):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the pool did not provision")


async def make_pool(fleet: Fleet) -> None:
    """The pool's endpoint with the pooled scorer taking all traffic (pointers uncached)."""
    endpoint: dict[str, Any] = {"location": "westeurope", "properties": {"authMode": "Key"}}
    await v2(fleet, "PUT", f"/onlineEndpoints/{POOL.endpoint}", endpoint)
    await settle(fleet, lambda _: True)
    deployment: dict[str, Any] = {
        "location": "westeurope",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "codeConfiguration": {"codeId": "rq-score/versions/1", "scoringScript": "score.py"},
            "environmentId": "rq-scorer/versions/1",
            "environmentVariables": {"RETRAINQ_POINTER_TTL_SECONDS": "0", "RETRAINQ_POOL": "p1"},
        },
    }
    path = f"/onlineEndpoints/{POOL.endpoint}/deployments/{POOL.deployment}"
    await v2(fleet, "PUT", path, deployment)
    await settle(fleet, lambda listed: len(listed["value"]) == 1)
    endpoint["properties"]["traffic"] = {POOL.deployment: 100}
    await v2(fleet, "PUT", f"/onlineEndpoints/{POOL.endpoint}", endpoint)


def target(fleet: Fleet) -> PoolTarget:
    """The pool target of the fleet's v2 workspace."""
    config = settings(fleet)
    token = StaticToken(SecretStr(fleet.config["arm"]["token"]))
    arm = V2Arm(fleet.http, fleet.emulator_url, token, RetryPolicy(attempts=1))
    workspace = fleet.emulator_url + config.workspace_path()
    registry = ModelRegistry(ModelsClient(arm, workspace, config.api_version), config)
    endpoint = PoolEndpoint(arm, workspace, config.api_version, POOL)
    return PoolTarget("p1", POOL, registry, endpoint, fleet.blobs)


async def trained_run(fleet: Fleet, seq: int, **fields: Any) -> Run:
    """A run of the tenant at ``seq`` whose model blob exists (trained on the tenant's data)."""
    data = bike_rental_csv(TENANT, 300, seed=seq)
    data_path = f"data/{TENANT}/v{seq}.csv"
    run = deployed_run(seq, tenant_id=TENANT, id=f"{seq:032x}", data_path=data_path, **fields)
    await fleet.blobs.upload(data_path, data.encode())
    model = train(parse_csv(data), BIKE_RENTAL)
    await fleet.blobs.upload(run.outputs.model_path, model.to_json())
    return run


async def deploy(pool: PoolTarget, run: Run, restores: Run | None = None) -> bool:
    """Both steps of a deploy; whether it deployed."""
    first = await pool.deploy(run, restores)
    if first.done:
        return first.deployed
    assert first.submitted
    second = await pool.deploy(run.model_copy(update={"deploy_submitted": True}), restores)
    assert second.done
    return second.deployed


async def test_a_deploy_moves_the_pointer_by_sequence_and_the_pool_serves_it(
    v2_fleet: Fleet,
) -> None:
    """Runs 1 and 2 deploy (each verified by the pool naming its version); a late run 1 is
    superseded; rollback run 3 points back at version 1; the pointer's history never goes
    back in run sequence; removal archives the container and the pool stops serving it."""
    fleet = v2_fleet
    await make_pool(fleet)
    pool = target(fleet)
    first, second = await trained_run(fleet, 1), await trained_run(fleet, 2)
    assert await deploy(pool, first)
    assert await deploy(pool, second)
    late = await pool.deploy(first)
    assert (late.done, late.deployed) == (True, False)
    rollback = await trained_run(fleet, 3, rollback_to=first.id)
    assert await deploy(pool, rollback, restores=first)
    rows = sample_rows((await fleet.blobs.download(first.data_path or "")), 2)
    assert len(rows) == 2
    answer = await pool.endpoint.score(fleet.http, TENANT, rows)
    assert answer.version == "1"
    history = (await v2_stats(fleet))["models"][f"rq-{TENANT}"]["tag_history"]
    pointers = [(t["retrainq-deployed-version"], t["retrainq-deployed-by"]) for t in history]
    assert pointers == [("1", "1"), ("2", "2"), ("1", "3")]
    assert sorted((await v2_stats(fleet))["models"][f"rq-{TENANT}"]["versions"]) == ["1", "2"]
    await pool.remove(TENANT)
    container = await pool.registry.client.get_container(f"rq-{TENANT}")
    assert container is not None
    assert container["properties"]["isArchived"] is True
    assert "retrainq-deployed-version" not in container["properties"]["tags"]


async def test_a_model_a_v2_job_trained_is_served_by_the_pool(v2_fleet: Fleet) -> None:
    """The whole chain on the emulator: a worker retrains a v2 tenant (its command job writes
    the model), the pool target registers it as version {seq} and points the tenant at it, and
    the pool's endpoint answers with that version and what the tenant's data trains."""
    fleet = v2_fleet
    await make_pool(fleet)
    onboarded = await fleet.onboard("poolchain", training_service=SERVICE)
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    (run,) = await fleet.wait_terminal([await fleet.retrain(onboarded.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    assert await deploy(target(fleet), run)
    rows = fleet_rows(fleet, onboarded.id)
    answer = await target(fleet).endpoint.score(fleet.http, onboarded.id, rows)
    assert answer.version == str(run.seq)
    served = [float(p["Scored Labels"]) for p in answer.predictions]
    assert served == pytest.approx(fleet.expected(onboarded.id, rows))
    registered = await target(fleet).registry.history(onboarded.id)
    assert [(m.run_id, m.seq) for m in registered] == [(run.id, run.seq)]


def test_a_new_tenant_joins_the_pool_with_the_most_room() -> None:
    """Room is capacity minus tenants; full pools take nobody."""
    pools = {
        "a": POOL.model_copy(update={"capacity": 10}),
        "b": POOL.model_copy(update={"capacity": 20}),
    }
    assert assign_pool(pools, {"a": 2, "b": 15}) == "a"
    assert assign_pool(pools, {"a": 2, "b": 5}) == "b"
    assert assign_pool(pools, {"a": 10, "b": 20}) is None
