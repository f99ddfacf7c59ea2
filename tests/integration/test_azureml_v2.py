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
from worker.azureml.errors import ThrottledError
from worker.azureml.retry import RetryPolicy
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


async def with_v2_datastore(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    await fleet.emulator("POST", "/_emulator/v2/reset")
    await v2(
        fleet,
        "PUT",
        f"/datastores/{DATASTORE}",
        datastore_body(fleet.blob_connection_string, "retrainq"),
    )
    return fleet


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    return await with_v2_datastore(fleet)


async def test_a_tenant_on_a_v2_service_is_retrained_end_to_end(v2_fleet: Fleet) -> None:
    """One v2 job per run, under the run's name, trained on the tenant's blob; the run passes
    the gate and deploys (classic target), and the endpoint serves what the tenant's data
    trains. No classic BES job is made."""
    fleet = v2_fleet
    tenant = await fleet.onboard("v2rental", training_service=SERVICE)
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
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
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    stats = await v2_stats(fleet)
    assert stats["faults"]["dropped"] == 1
    assert stats["jobs_total"] == 1
    job = stats["jobs"][job_name(run)]
    assert (job["jobs_created"], job["puts_unchanged"]) == (1, 1)
    assert run.orphaned_submissions == 0


async def test_the_port_submits_once_per_run_and_cancels(v2_fleet: Fleet) -> None:
    """Through the adapter itself: two submits of one run name one job, a third with other
    settings is refused and meets that job; start checks it; cancel ends it Canceled."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 60})
    tenant = await fleet.onboard("v2direct", training_service=SERVICE)
    created = await fleet.store.create_run(RunRequest(tenant_id=tenant.id))
    run = await fleet.store.get_run(created.run_id)
    assert run is not None
    # Listings answer status reads for list_fresh_seconds: short here, to see the cancel end.
    config = settings(fleet).model_copy(update={"list_fresh_seconds": 0.2})
    client = JobsClient(
        fleet.http,
        fleet.emulator_url,
        config.workspace_path(),
        StaticToken(SecretStr(fleet.config["arm"]["token"])),
    )
    training = AzureMLV2Training({SERVICE: client}, {SERVICE: config}, fleet.blobs)
    first, second = await training.submit(run), await training.submit(run)
    assert first == second == job_name(run)
    changed = config.model_copy(update={"compute": "other-cluster"})
    drifted = AzureMLV2Training({SERVICE: client}, {SERVICE: changed}, fleet.blobs)
    assert await drifted.submit(run) == first  # refused as changed: the run keeps its job
    await training.start(run, first)
    assert (await training.status(run, first)).state is JobState.RUNNING
    await training.cancel(run, first)

    async def ended() -> bool:
        return (await training.status(run, first)).state.terminal

    await until(ended, within=10)
    assert (await training.status(run, first)).state is JobState.CANCELLED
    await training.cancel(run, first)  # an ended job needs nothing
    job = (await v2_stats(fleet))["jobs"][first]
    assert (job["jobs_created"], job["puts_unchanged"], job["puts_refused"]) == (1, 1, 1)
    assert job["cancels"] == 1


async def test_a_failed_v2_job_fails_the_run_with_its_reason(v2_fleet: Fleet) -> None:
    """The job ends Failed: the run fails with the job's failure reason and keeps its one
    job (nothing resubmitted)."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/v2/faults", {"job_failure_rate": 1.0})
    tenant = await fleet.onboard("v2failing", training_service=SERVICE)
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert (run.state, run.error_code) == (RunState.FAILED, "bes_Failed"), run.error
    assert "injected fault" in (run.error or "")
    stats = await v2_stats(fleet)
    assert stats["jobs_total"] == 1
    assert stats["jobs"][job_name(run)]["status"] == "Failed"


async def test_cancelling_a_training_run_cancels_its_v2_job(v2_fleet: Fleet) -> None:
    """A cancel request for a run whose job runs ends the run cancelled and the job
    Canceled at the service."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 120})
    tenant = await fleet.onboard("v2cancel", training_service=SERVICE)
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=services(fleet))
    run_id = await fleet.retrain(tenant.id)

    async def training() -> bool:
        run = await fleet.store.get_run(run_id)
        return run is not None and run.state is RunState.TRAINING

    await until(training, within=30)
    assert await fleet.store.request_cancel(run_id)
    (run,) = await fleet.wait_terminal([run_id], within=60)
    assert run.state is RunState.CANCELLED, run.error

    async def canceled() -> bool:
        job = (await v2_stats(fleet))["jobs"][job_name(run)]
        return bool(job["status"] == "Canceled")

    await until(canceled, within=10)


async def test_a_throttled_call_is_a_throttled_error_with_the_servers_hint(
    v2_fleet: Fleet,
) -> None:
    """429 with Retry-After from the jobs surface becomes ThrottledError(retry_after=1) from
    the client (one try), and a run through throttled submits still makes one job."""
    fleet = v2_fleet
    config = settings(fleet)
    token = StaticToken(SecretStr(fleet.config["arm"]["token"]))
    client = JobsClient(
        fleet.http, fleet.emulator_url, config.workspace_path(), token, RetryPolicy(attempts=1)
    )
    faults = {"v2_jobs": {"fail_next": 1, "error_status": 429}}
    await fleet.emulator("PUT", "/_emulator/v2/faults", faults)
    with pytest.raises(ThrottledError) as throttled:
        await client.get("rq-nobody-1-0")
    assert throttled.value.retry_after == 1.0
    await fleet.emulator(
        "PUT", "/_emulator/v2/faults", {"v2_jobs": {"fail_next": 3, "error_status": 429}}
    )
    tenant = await fleet.onboard("v2throttled", training_service=SERVICE)
    fleet.run_workers(
        1, RETRAINQ_TRAINING_SERVICES=services(fleet), RETRAINQ_THROTTLE_PAUSE_SECONDS="0.2"
    )
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    stats = await v2_stats(fleet)
    assert (stats["faults"]["injected"], stats["jobs_total"]) == (3, 1)
