"""The v2 model registry against the emulator: runs' models as versions, history rebuilt."""

from __future__ import annotations

import contextlib

import pytest
from pydantic import SecretStr

from tests.integration.fleet import Fleet
from tests.integration.test_azureml_v2 import settings, v2_stats, with_v2_datastore
from tests.unit.test_azureml_v2_registry import deployed_run
from worker.azureml.arm import StaticToken
from worker.azureml.errors import AzureMLError
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.registry import ModelRegistry, ModelsClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    return await with_v2_datastore(fleet)


def registry(fleet: Fleet, attempts: int = 1) -> ModelRegistry:
    """The registry of the fleet's v2 workspace."""
    config = settings(fleet)
    token = StaticToken(SecretStr(fleet.config["arm"]["token"]))
    arm = V2Arm(fleet.http, fleet.emulator_url, token, RetryPolicy(attempts=attempts))
    client = ModelsClient(arm, fleet.emulator_url + config.workspace_path(), config.api_version)
    return ModelRegistry(client, config)


async def test_each_runs_model_is_one_version_and_the_history_is_rebuilt_from_them(
    v2_fleet: Fleet,
) -> None:
    """Three runs of a tenant become versions 1, 2 and 3 of rq-{tenant} (one registered
    twice, one through a dropped reply); the history read back equals what was registered,
    newest first; another tenant's versions stay apart; no pointer is set by registering."""
    fleet = v2_fleet
    models = registry(fleet, attempts=3)
    runs = [
        deployed_run(seq, tenant_id="reg1", id=f"{seq:032x}", data_path="data/reg1/v1.csv")
        for seq in (1, 2, 3)
    ]
    registered = [await models.register(run) for run in runs[:2]]
    assert [r.version for r in registered] == ["1", "2"]
    assert (await models.register(runs[1])).model == registered[1].model
    await fleet.emulator("PUT", "/_emulator/v2/faults", {"v2_models": {"commit_then_drop": 1}})
    with contextlib.suppress(AzureMLError):  # the retry may meet the dropped reply itself
        await models.register(runs[2])
    await models.register(runs[2])
    other = deployed_run(1, tenant_id="reg2", id="f" * 32)
    await models.register(other)

    rebuilt = await models.history("reg1")
    assert [m.seq for m in rebuilt] == [3, 2, 1]
    assert [(m.run_id, m.model_path, m.metrics, m.decision, m.deployed_at) for m in rebuilt] == [
        (r.id, r.outputs.model_path, r.metrics, r.decision, r.phases["deploying"])
        for r in reversed(runs)
    ]
    assert [m.run_id for m in await models.history("reg2")] == [other.id]
    assert await models.pointer("reg1") is None
    assert await models.history("nobody") == []
    stats = (await v2_stats(fleet))["models"]
    assert sorted(stats["rq-reg1"]["versions"]) == ["1", "2", "3"]
    assert stats["rq-reg1"]["versions"]["2"]["puts_unchanged"] == 1
