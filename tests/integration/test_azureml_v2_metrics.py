"""The gate's metrics of v2 runs: from the job's MLflow run, else from its evaluation output."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.integration.fleet import Fleet, until
from tests.integration.test_azureml_v2 import (
    SERVICE,
    services,
    settings,
    v2_stats,
    with_v2_datastore,
)
from tests.integration.test_azureml_v2_polling import client
from worker.azureml.arm import StaticToken
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.mlflow import MlflowClient
from worker.azureml_v2.training import AzureMLV2Training
from worker.evaluate import parse_evaluation_csv
from worker.run.model import Run
from worker.schemas import RunState
from worker.store import RunRequest

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    return await with_v2_datastore(fleet)


def adapter(fleet: Fleet) -> AzureMLV2Training:
    """The training adapter of the fleet's v2 service, with its MLflow client."""
    config = settings(fleet).model_copy(update={"list_fresh_seconds": 0.2})
    token = StaticToken(SecretStr(fleet.config["arm"]["token"]))
    arm = V2Arm(fleet.http, fleet.emulator_url, token, RetryPolicy(attempts=1))
    tracking = MlflowClient(arm, fleet.emulator_url + config.workspace_path(), config.api_version)
    return AzureMLV2Training(
        {SERVICE: client(fleet)}, {SERVICE: config}, fleet.blobs, mlflow={SERVICE: tracking}
    )


async def finished_run(fleet: Fleet, training: AzureMLV2Training, tenant_id: str) -> Run:
    """A run of a new tenant whose job the adapter submitted and which has completed."""
    tenant = await fleet.onboard(tenant_id, training_service=SERVICE)
    created = await fleet.store.create_run(RunRequest(tenant_id=tenant.id))
    run = await fleet.store.get_run(created.run_id)
    assert run is not None
    name = await training.submit(run)
    run = run.model_copy(update={"bes_job_id": name})

    async def ended() -> bool:
        return (await training.status(run, name)).state.terminal

    await until(ended, within=60)
    return run


async def test_metrics_come_from_mlflow_and_from_the_evaluation_output_without_it(
    v2_fleet: Fleet,
) -> None:
    """A finished job's metrics are read from MLflow (they are there with the evaluation blob
    overwritten); a job that logged none, or MLflow failing, falls back to the blob."""
    fleet = v2_fleet
    training = adapter(fleet)
    run = await finished_run(fleet, training, "v2metrics")
    from_blob = parse_evaluation_csv(
        (await fleet.blobs.download(run.outputs.evaluation_path, max_bytes=65536)).decode()
    )
    await fleet.blobs.upload(run.outputs.evaluation_path, b"not an evaluation")
    assert parse_evaluation_csv(await training.evaluation(run)) == from_blob
    assert (await v2_stats(fleet))["calls"]["mlflow_call"] == 1

    await fleet.emulator("PUT", "/_emulator/v2/faults", {"jobs_log_no_metrics": True})
    silent = await finished_run(fleet, training, "v2silent")
    assert "Coefficient of Determination" in parse_evaluation_csv(await training.evaluation(silent))
    await fleet.emulator("PUT", "/_emulator/v2/faults", {"v2_mlflow": {"fail_next": 5}})
    assert parse_evaluation_csv(await training.evaluation(silent)) == parse_evaluation_csv(
        (await fleet.blobs.download(silent.outputs.evaluation_path, max_bytes=65536)).decode()
    )
    faults = (await v2_stats(fleet))["faults"]
    assert faults["mlflow_injected"] == 1


async def test_a_run_on_a_v2_service_is_gated_on_its_mlflow_metrics(v2_fleet: Fleet) -> None:
    """End to end: the run succeeds with the metrics MLflow holds for its job."""
    fleet = v2_fleet
    tenant = await fleet.onboard("v2gated", training_service=SERVICE)
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    assert (await v2_stats(fleet))["calls"]["mlflow_call"] == 1
    assert run.metrics["Coefficient of Determination"] > 0
