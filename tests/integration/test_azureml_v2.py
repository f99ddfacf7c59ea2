"""Tenants on an Azure ML v2 training service, end to end: real Redis, Azurite, the emulator's
v2 jobs and real workers. Decided from what Redis and the emulator recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from tests.azureml_v2 import datastore_body, v2_settings, workspace_url
from tests.integration.fleet import Fleet, sample_rows, until
from worker.azureml.arm import StaticToken
from worker.azureml.bes import JobState
from worker.azureml_v2.jobs import JobsClient
from worker.azureml_v2.training import AzureMLV2Training, job_name
from worker.schemas import RunState
from worker.settings import AzureMLV2Config
from worker.store import RunRequest

pytestmark = pytest.mark.timeout(180)

SERVICE = "v2"
DATASTORE = "retrainq"


async def v2(fleet: Fleet, method: str, path: str, body: object = None) -> Any:
    """Call an ARM route of the emulator's v2 workspace with the ARM token."""
    arm = fleet.config["arm"]
    url = workspace_url(fleet.emulator_url, arm["subscription_id"], arm["resource_groups"][0])
    headers = {"Authorization": f"Bearer {arm['token']}"}
    async with fleet.http.request(
        method, f"{url}{path}?api-version=2025-12-01", json=body, headers=headers
    ) as reply:
        assert reply.status < 300, await reply.text()
        return await reply.json()


async def v2_stats(fleet: Fleet) -> dict[str, Any]:
    """The emulator's v2 job counters."""
    stats: dict[str, Any] = await fleet.emulator("GET", "/_emulator/v2/stats")
    return stats


def settings(fleet: Fleet) -> AzureMLV2Config:
    """The v2 settings of the test's training service."""
    arm = fleet.config["arm"]
    raw = v2_settings(arm["subscription_id"], arm["resource_groups"][0], DATASTORE)
    return AzureMLV2Config.model_validate(raw)


def services(fleet: Fleet) -> str:
    """RETRAINQ_TRAINING_SERVICES: the emulator's classic services plus the v2 one."""
    raw = json.loads(fleet.worker_env()["RETRAINQ_TRAINING_SERVICES"])
    raw[SERVICE] = {
        "backend": "azureml_v2",
        "max_running": 4,
        "columns": raw["default"]["columns"],
        "azureml_v2": settings(fleet).model_dump(mode="json"),
    }
    return json.dumps(raw)


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    await fleet.emulator("POST", "/_emulator/v2/reset")
    await v2(
        fleet,
        "PUT",
        f"/datastores/{DATASTORE}",
        datastore_body(fleet.blob_connection_string, "retrainq"),
    )
    return fleet


async def test_a_tenant_on_a_v2_service_is_retrained_end_to_end(v2_fleet: Fleet) -> None:
    """One v2 job per run, under the run's name, trained on the tenant's blob; the run passes
    the gate and deploys (classic target), and the endpoint serves what the tenant's data
    trains. No classic BES job is made."""
    fleet = v2_fleet
    tenant = await fleet.onboard("v2rental", training_service=SERVICE)
    fleet.start_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    assert run.bes_job_id == job_name(run)
    stats = await v2_stats(fleet)
    assert stats["jobs_total"] == 1
    job = stats["jobs"][job_name(run)]
    assert (job["status"], job["jobs_created"]) == ("Completed", 1)
    assert "Coefficient of Determination" in run.metrics
    assert (await fleet.training_stats())["jobs_created"] == 0
    rows = sample_rows(fleet, tenant.id)
    assert await fleet.score(tenant, rows) == pytest.approx(fleet.expected(tenant.id, rows))


async def test_a_submit_whose_reply_was_lost_meets_the_same_job(v2_fleet: Fleet) -> None:
    """The job PUT is committed and its reply dropped: the repeated PUT answers 200 with the
    same job, so the run has one job and counts no orphan."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/v2/faults", {"v2_jobs": {"commit_then_drop": 1}})
    tenant = await fleet.onboard("v2dropped", training_service=SERVICE)
    fleet.start_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    stats = await v2_stats(fleet)
    assert stats["faults"]["dropped"] == 1
    assert stats["jobs_total"] == 1
    job = stats["jobs"][job_name(run)]
    assert (job["jobs_created"], job["puts_unchanged"]) == (1, 1)
    assert run.orphaned_submissions == 0


async def test_the_port_submits_once_per_run_and_cancels(v2_fleet: Fleet) -> None:
    """Through the adapter itself: two submits of one run name one job; start checks it;
    cancel ends it Canceled, which the port reports as cancelled."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 60})
    tenant = await fleet.onboard("v2direct", training_service=SERVICE)
    created = await fleet.store.create_run(RunRequest(tenant_id=tenant.id))
    run = await fleet.store.get_run(created.run_id)
    assert run is not None
    config = settings(fleet)
    client = JobsClient(
        fleet.http,
        fleet.emulator_url,
        config.workspace_path(),
        StaticToken(SecretStr(fleet.config["arm"]["token"])),
    )
    training = AzureMLV2Training({SERVICE: client}, {SERVICE: config}, fleet.blobs)
    first, second = await training.submit(run), await training.submit(run)
    assert first == second == job_name(run)
    await training.start(run, first)
    assert (await training.status(run, first)).state is JobState.RUNNING
    await training.cancel(run, first)

    async def ended() -> bool:
        return (await training.status(run, first)).state.terminal

    await until(ended, within=10)
    assert (await training.status(run, first)).state is JobState.CANCELLED
    await training.cancel(run, first)  # an ended job needs nothing
    job = (await v2_stats(fleet))["jobs"][first]
    assert (job["jobs_created"], job["puts_unchanged"], job["cancels"]) == (1, 1, 1)
