"""The poll sweeper: running BES jobs are polled outside arq, and no parked run is forgotten."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from tests.integration.fleet import Fleet, until
from tests.integration.workers import LocalWorker
from tests.runs import put_in_state
from worker.parking import ParkedRuns
from worker.schemas import RunState

pytestmark = pytest.mark.timeout(180)


async def _parked(fleet: Fleet) -> list[str]:
    ids: list[str] = [
        i.decode() if isinstance(i, bytes) else i
        for i in await fleet.redis.zrange(fleet.store.keys.polls, 0, -1)
    ]
    return ids


async def _parked_run(fleet: Fleet, tenant_id: str, job_seconds: float) -> tuple[str, LocalWorker]:
    """One tenant's run, trained by one new worker, once it is parked: (run id, worker)."""
    settings = {"instant": True, "min_job_seconds": job_seconds}
    await fleet.emulator("PUT", "/_emulator/settings", settings)
    tenant = await fleet.onboard(tenant_id)
    (worker,) = fleet.run_workers(1)
    run_id = await fleet.retrain(tenant.id)

    async def parked() -> bool:
        return await _parked(fleet) == [run_id]

    await until(parked, within=20)
    return run_id, worker


async def test_running_jobs_are_parked_and_polled_without_arq_jobs(fleet: Fleet) -> None:
    """While 6 jobs train, each run is parked, no step is on arq's queue, polls are counted."""
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 4})
    tenants = [await fleet.onboard(f"p{i}") for i in range(6)]
    fleet.run_workers(1)
    run_ids = [await fleet.retrain(t.id) for t in tenants]

    async def all_parked() -> bool:
        return sorted(await _parked(fleet)) == sorted(run_ids)

    await until(all_parked, within=20)
    await until(lambda: _polled_twice(fleet, run_ids), within=20)
    queued = [j.decode() for j in await fleet.pool.zrange("retrainq:queue", 0, -1)]
    assert [j for j in queued if j.startswith("advance:")] == []  # crons may come and go
    runs = await fleet.wait_terminal(run_ids, within=60)
    assert [r.state for r in runs] == [RunState.SUCCEEDED] * 6, [r.error for r in runs]
    assert all(r.polls >= 2 for r in runs), [r.polls for r in runs]
    assert await _parked(fleet) == []


async def _polled_twice(fleet: Fleet, run_ids: list[str]) -> bool:
    runs = await fleet.store.get_runs(run_ids)
    return all(r.state is RunState.TRAINING and r.polls >= 2 for r in runs)


async def test_runs_claimed_by_a_sweeper_that_died_are_polled_after_the_claim(
    fleet: Fleet,
) -> None:
    """Claims held by a dead sweeper expire; another worker polls the runs and ends them."""
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 2})
    tenants = [await fleet.onboard(f"d{i}") for i in range(4)]
    workers = fleet.run_workers(1)
    run_ids = [await fleet.retrain(t.id) for t in tenants]

    async def all_parked() -> bool:
        return sorted(await _parked(fleet)) == sorted(run_ids)

    await until(all_parked, within=20)
    await workers[0].stop()
    # Stand in for a sweeper that claimed every parked run and was killed before polling:
    # each run is held back for the claim (4 s), and nobody moves it on.
    claimed = await fleet.store.ledger.claim_polls(100, 4.0)
    # A parked run may have been due only later: push the rest back the same way.
    for run_id in set(run_ids) - set(claimed):
        await fleet.redis.zadd(fleet.store.keys.polls, {run_id: int(time.time() * 1000) + 4000})
    released_at = time.monotonic() + 4.0
    fleet.run_workers(1)
    runs = await fleet.wait_terminal(run_ids, within=60)
    assert [r.state for r in runs] == [RunState.SUCCEEDED] * 4, [r.error for r in runs]
    assert time.monotonic() >= released_at
    stats = await fleet.training_stats()
    assert stats["jobs_started"] == 4


async def test_cancelling_a_parked_run_ends_it_and_unparks_it(fleet: Fleet) -> None:
    """A cancel request reaches a parked run: cancelled, BES job cancelled, off the polls set."""
    run_id, _ = await _parked_run(fleet, "parked-cancel", 120)
    assert await fleet.store.request_cancel(run_id)
    runs = await fleet.wait_terminal([run_id], within=30)
    assert runs[0].state is RunState.CANCELLED
    assert await _parked(fleet) == []
    stats = await fleet.training_stats()
    assert stats["running_now"] == 0


async def test_parked_runs_are_polled_by_steps_when_no_worker_sweeps(fleet: Fleet) -> None:
    """Runs parked by a sweeper, then only workers without one (a rollback of poll_sweeper):
    the reconciler hands the stalled runs to steps, and they finish."""
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 3})
    tenants = [await fleet.onboard(f"o{i}") for i in range(3)]
    (sweeping,) = fleet.run_workers(1)
    run_ids = [await fleet.retrain(t.id) for t in tenants]

    async def all_parked() -> bool:
        return sorted(await _parked(fleet)) == sorted(run_ids)

    await until(all_parked, within=20)
    await sweeping.stop()
    fleet.run_workers(1, RETRAINQ_POLL_SWEEPER="false", RETRAINQ_SWEEP_CLAIM_SECONDS="1")
    runs = await fleet.wait_terminal(run_ids, within=40)
    assert [r.state for r in runs] == [RunState.SUCCEEDED] * 3, [r.error for r in runs]
    assert await _parked(fleet) == []


async def test_a_run_on_an_endpoint_no_longer_configured_fails_instead_of_hanging(
    fleet: Fleet,
) -> None:
    """A training run whose BES endpoint left the configuration ends failed ('config')."""
    run_id, worker = await _parked_run(fleet, "moved", 120)
    await worker.stop()
    run = await fleet.store.get_run(run_id)
    assert run is not None
    moved = run.model_copy(update={"bes_endpoint": 7})  # the service has one endpoint
    await put_in_state(fleet.store, moved, RunState.TRAINING, due_in=None, park_in=0)
    fleet.run_workers(1)
    (ended,) = await fleet.wait_terminal([run_id], within=30)
    assert (ended.state, ended.error_code) == (RunState.FAILED, "config"), ended.error
    assert "endpoint 7" in (ended.error or "")
    assert await _parked(fleet) == []


async def test_a_run_seen_finished_is_woken_again_without_another_poll(fleet: Fleet) -> None:
    """A sweeper saw the job Finished and recorded its duration, but the wake was lost and
    the claim ran out: the next sweep only wakes the run (no second poll, no second duration)."""
    run_id, worker = await _parked_run(fleet, "seen", 2)
    await worker.stop()

    async def job_finished() -> bool:
        return int((await fleet.training_stats())["jobs_finished"]) == 1

    await until(job_finished, within=20)
    run = await fleet.store.get_run(run_id)
    assert run is not None
    assert run.bes_job_id is not None
    parking = ParkedRuns(fleet.redis, fleet.store.keys)
    recorded = len(await parking.durations(run.training_service))
    async with fleet.redis.pipeline(transaction=False) as pipe:  # what that sweeper wrote
        fleet.store.ledger.mark_finished(pipe, run_id, run.bes_job_id)
        parking.record_duration_in(pipe, run.training_service, 2.0)
        await pipe.execute()
    calls_before = _remote_calls()
    fleet.run_workers(1)
    (ended,) = await fleet.wait_terminal([run_id], within=30)
    assert ended.state is RunState.SUCCEEDED, ended.error
    assert len(await parking.durations(run.training_service)) == recorded + 1
    calls = {api: n - calls_before.get(api, 0.0) for api, n in _remote_calls().items()}
    assert calls.get("management", 0) > 0  # it deployed
    assert calls.get("bes", 0) == 0  # and never asked BES again


def _remote_calls() -> dict[str, float]:
    """Azure ML calls made so far in this process, by API (every status)."""
    totals: dict[str, float] = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "retrainq_remote_calls_total":
                api = sample.labels["api"]
                totals[api] = totals.get(api, 0.0) + sample.value
    return totals
