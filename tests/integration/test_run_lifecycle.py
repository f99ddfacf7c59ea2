"""A run's life end to end: phase metrics, lost leases, orphaned submissions, foreign data.

Each test runs real arq workers in its event loop against Redis, Azurite and the emulator,
and decides from what Redis, the emulator and the metrics registry recorded.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from producer.devtools.emulated import worker_env
from tests.integration.fleet import Fleet, until
from tests.runs import put_in_state
from worker.keys import Keys
from worker.run.ledger import Ledger
from worker.run.scripts import now_ms
from worker.run.slots import Slots
from worker.schemas import Lane, RunState
from worker.settings import TrainingServiceConfig
from worker.store import RunRequest

pytestmark = pytest.mark.timeout(180)

SERVICE = "default"


PHASES = ("queued", "waiting_slot", "submitting", "training", "evaluating", "deploying")


def _phase_counts() -> dict[str, float]:
    """Phase durations recorded so far in this process, by phase."""
    return {
        phase: REGISTRY.get_sample_value("retrainq_phase_seconds_count", {"phase": phase}) or 0.0
        for phase in PHASES
    }


async def test_every_phase_a_run_passes_is_timed(fleet: Fleet) -> None:
    """A run that deploys records a phase duration for each state it left, queued included."""
    tenant = await fleet.onboard("phases")
    before = _phase_counts()
    fleet.run_workers(1)
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=60)
    assert run.state is RunState.SUCCEEDED, run.error
    after = _phase_counts()
    assert {phase: after[phase] - before[phase] for phase in PHASES} == dict.fromkeys(PHASES, 1.0)


def _one_slot_services(fleet: Fleet) -> tuple[str, dict[str, TrainingServiceConfig]]:
    env = worker_env(fleet.config, fleet.emulator_url)
    raw = json.loads(env["RETRAINQ_TRAINING_SERVICES"])
    raw[SERVICE]["max_running"] = 1
    for endpoint in raw[SERVICE]["endpoints"]:
        endpoint["max_concurrent_jobs"] = 1
    services = {name: TrainingServiceConfig.model_validate(value) for name, value in raw.items()}
    return json.dumps(raw), services


async def test_a_parked_job_whose_slot_went_to_another_run_is_failed_not_left_running(
    fleet: Fleet,
) -> None:
    """Cap 1: a parked run's lease runs out and its slot is granted to another run. The
    sweeper's hold finds the slot lost with the cap full: the run fails ('slot_lost') and
    its job is cancelled, so never two jobs run at once; the other run succeeds."""
    raw, services = _one_slot_services(fleet)
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 120})
    first, second = await fleet.onboard("lease-a"), await fleet.onboard("lease-b")
    (worker,) = fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=raw)
    run_a = await fleet.retrain(first.id)

    async def parked() -> bool:
        return await fleet.redis.zscore(fleet.store.keys.polls, run_a) is not None

    await until(parked, within=30)
    await worker.stop()
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 1})
    keys = Keys("retrainq")
    ledger = Ledger(fleet.redis, keys)
    slots = Slots(fleet.redis, keys, ledger, services)
    # a's lease ran out while nobody renewed it; b waits and is granted the only slot.
    await fleet.redis.zadd(keys.slots(SERVICE), {run_a: now_ms() - 1})
    await fleet.redis.zadd(keys.endpoint_slots(SERVICE, 0), {run_a: now_ms() - 1})
    created = await fleet.store.create_run(RunRequest(tenant_id=second.id, lane=Lane.BULK))
    run_b = created.run_id
    queued = await fleet.store.get_run(run_b)
    assert queued is not None
    await put_in_state(fleet.store, queued, RunState.WAITING_SLOT)
    await ledger.ensure_waiting(SERVICE, Lane.BULK, run_b)
    assert [g.run_id for g in await slots.dispatch(SERVICE)] == [run_b]
    fleet.run_workers(1, RETRAINQ_TRAINING_SERVICES=raw)
    ended_a, ended_b = await fleet.wait_terminal([run_a, run_b], within=60)
    assert (ended_a.state, ended_a.error_code) == (RunState.FAILED, "slot_lost"), ended_a.error
    assert ended_b.state is RunState.SUCCEEDED, ended_b.error
    stats = await fleet.training_stats()
    assert (stats["jobs_started"], stats["jobs_cancelled"]) == (2, 1)


async def test_only_submissions_that_may_have_created_a_job_count_as_orphans(
    fleet: Fleet,
) -> None:
    """Two submits answered 503 (nothing created) and one whose answer was lost after the
    job was created: the run counts exactly one orphan, and starts exactly one job."""
    await fleet.emulator(
        "PUT", "/_emulator/faults", {"bes_submit": {"fail_next": 2, "commit_then_drop": 1}}
    )
    tenant = await fleet.onboard("orphans")
    fleet.run_workers(1, RETRAINQ_THROTTLE_PAUSE_SECONDS="0.2")
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=90)
    assert run.state is RunState.SUCCEEDED, run.error
    assert (run.submit_attempts, run.orphaned_submissions) == (4, 1)
    stats = await fleet.training_stats()
    assert (stats["jobs_created"], stats["jobs_started"]) == (2, 1)


async def test_a_created_job_the_run_never_starts_is_deleted_and_recorded(
    fleet: Fleet,
) -> None:
    """Its start keeps failing until the run gives up: the created job is deleted at the
    service and the run records it as an orphan it deleted."""
    await fleet.emulator("PUT", "/_emulator/faults", {"bes_start": {"fail_next": 5}})
    tenant = await fleet.onboard("never-started")
    fleet.run_workers(1, RETRAINQ_STEP_MAX_FAILURES="1", RETRAINQ_THROTTLE_PAUSE_SECONDS="0.2")
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=60)
    assert (run.state, run.error_code) == (RunState.FAILED, "retries_exhausted"), run.error
    assert (run.orphaned_submissions, run.orphans_deleted) == (1, 1)
    stats = await fleet.training_stats()
    assert (stats["jobs_created"], stats["jobs_started"], stats["jobs_cancelled"]) == (1, 0, 1)


async def test_a_run_whose_stored_data_path_is_foreign_fails_before_any_job(
    fleet: Fleet,
) -> None:
    """A tenant record pointing at another tenant's blob (written before paths were
    checked): its run fails with 'foreign_data_path' and no job (so no SAS) is made."""
    await fleet.onboard("owner")
    tenant = await fleet.onboard("borrower")
    await fleet.store.update_tenant(
        tenant.id, lambda t: t.model_copy(update={"data_path": "data/owner/v1.csv"})
    )
    fleet.run_workers(1)
    (run,) = await fleet.wait_terminal([await fleet.retrain(tenant.id)], within=30)
    assert (run.state, run.error_code) == (RunState.FAILED, "foreign_data_path"), run.error
    assert run.data_path == "data/owner/v1.csv"
    assert (await fleet.training_stats())["jobs_created"] == 0
