"""v2 job states within ARM's read budget, against the emulator: listings instead of one GET
per job, the budget mirror stopping before the bucket is empty, a 429's Retry-After kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from tests.integration.fleet import Fleet
from tests.integration.test_azureml_v2 import (
    SERVICE,
    services,
    settings,
    v2_stats,
    with_v2_datastore,
)
from worker.azureml.arm import StaticToken
from worker.azureml.bes import JobState
from worker.azureml.errors import ThrottledError
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.budget import ArmBudget
from worker.azureml_v2.jobs import JobsClient
from worker.azureml_v2.training import AzureMLV2Training, job_name
from worker.run.model import Run
from worker.schemas import RunState
from worker.settings import ArmBudgetConfig, BucketBudget
from worker.store import RunRequest

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator and the fleet's blob container as its datastore."""
    return await with_v2_datastore(fleet)


def client(fleet: Fleet, budget: ArmBudget | None = None) -> JobsClient:
    """A jobs client of the fleet's v2 workspace (one try per call)."""
    return JobsClient(
        fleet.http,
        fleet.emulator_url,
        settings(fleet).workspace_path(),
        StaticToken(SecretStr(fleet.config["arm"]["token"])),
        RetryPolicy(attempts=1),
        budget=budget,
    )


async def throttle(fleet: Fleet, reads: int, per_second: float = 0) -> None:
    """Give the principal a reads bucket of ``reads`` (refilled at ``per_second``)."""
    budgets = {"reads": {"capacity": reads, "per_second": per_second}}
    await fleet.emulator("PUT", "/_emulator/v2/throttle", budgets)


async def calls(fleet: Fleet) -> dict[str, Any]:
    """The emulator's v2 call counters and what its budgets took and refused."""
    stats = await v2_stats(fleet)
    return {
        **stats["calls"],
        **{
            f"{k}_reads": v["reads"]
            for k, v in (
                ("taken", stats["throttle"]["taken"]),
                ("refused", stats["throttle"]["refused"]),
            )
        },
    }


async def runs_of(fleet: Fleet, count: int) -> list[Run]:
    """One new run for each of ``count`` new v2 tenants."""
    runs = []
    for index in range(count):
        tenant = await fleet.onboard(f"v2poll{index}", training_service=SERVICE)
        created = await fleet.store.create_run(RunRequest(tenant_id=tenant.id))
        run = await fleet.store.get_run(created.run_id)
        assert run is not None
        runs.append(run)
    return runs


async def test_the_states_of_many_jobs_come_from_one_list_call(v2_fleet: Fleet) -> None:
    """Twelve running jobs of one submission window, read together: one list page, no GET,
    and every one reported running."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 120})
    runs = await runs_of(fleet, 12)
    jobs = client(fleet)
    training = AzureMLV2Training({SERVICE: jobs}, {SERVICE: settings(fleet)}, fleet.blobs)
    names = [await training.submit(run) for run in runs]
    before = await calls(fleet)
    reports = await asyncio.gather(
        *(training.status(run, name) for run, name in zip(runs, names, strict=True))
    )
    after = await calls(fleet)
    assert {report.state for report in reports} == {JobState.RUNNING}
    assert after.get("job_list_page", 0) - before.get("job_list_page", 0) == 1
    assert after.get("job_get", 0) == before.get("job_get", 0)


async def test_the_client_stops_at_its_reserve_without_emptying_the_bucket(
    v2_fleet: Fleet,
) -> None:
    """A bucket of 20 that never refills, 5 of it reserved: 15 reads go out, the 16th fails
    with ThrottledError before it is sent, and the service refused nothing."""
    fleet = v2_fleet
    await throttle(fleet, 20)
    mirror = BucketBudget(capacity=20, per_second=0, reserve=5)
    jobs = client(fleet, ArmBudget(ArmBudgetConfig(reads=mirror)))
    for _ in range(15):
        await jobs.list_tagged("retrainq-poll-none")
    with pytest.raises(ThrottledError) as spent:
        await jobs.list_tagged("retrainq-poll-none")
    assert spent.value.code == "ArmBudgetSpent"
    counted = await calls(fleet)
    assert (counted["taken_reads"], counted["refused_reads"]) == (15, 0)


async def test_after_a_429_no_read_is_sent_until_its_retry_after_has_passed(
    v2_fleet: Fleet,
) -> None:
    """The service's bucket is smaller than the client believes: the read that finds it
    empty answers 429 with Retry-After; every read after it fails at once, unsent."""
    fleet = v2_fleet
    await throttle(fleet, 3)
    # It believes in a large, fast bucket and keeps no reserve: only the 429 stops it.
    mirror = BucketBudget(capacity=250, per_second=1000, reserve=0)
    jobs = client(fleet, ArmBudget(ArmBudgetConfig(reads=mirror)))
    for _ in range(3):
        await jobs.list_tagged("retrainq-poll-none")
    with pytest.raises(ThrottledError) as refused:
        await jobs.list_tagged("retrainq-poll-none")
    assert (refused.value.status, refused.value.retry_after) == (429, 3600)
    for _ in range(5):
        with pytest.raises(ThrottledError) as blocked:
            await jobs.get("rq-anything-1-0")
        assert blocked.value.code == "ArmBudgetSpent"
    counted = await calls(fleet)
    assert (counted["taken_reads"], counted["refused_reads"]) == (3, 1)


async def test_the_sweeper_reads_job_states_from_listings_not_one_get_per_poll(
    v2_fleet: Fleet,
) -> None:
    """Five v2 tenants retrained by a worker with its sweeper: all succeed, polled many
    times, and the only job GETs are one per run (its start check): every poll was a
    listing."""
    fleet = v2_fleet
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 1})
    tenants = [await fleet.onboard(f"v2swept{i}", training_service=SERVICE) for i in range(5)]
    raw = services(fleet).replace('"list_fresh_seconds": 10.0', '"list_fresh_seconds": 1.0')
    assert '"list_fresh_seconds": 1.0' in raw
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=raw)
    ids = [await fleet.retrain(tenant.id) for tenant in tenants]
    done = await fleet.wait_terminal(ids, within=120)
    assert {run.state for run in done} == {RunState.SUCCEEDED}, [run.error for run in done]
    counted = await calls(fleet)
    assert counted["job_get"] == len(done)
    assert counted["job_list_page"] >= 1
    stats = await v2_stats(fleet)
    assert all(stats["jobs"][job_name(run)]["jobs_created"] == 1 for run in done)
