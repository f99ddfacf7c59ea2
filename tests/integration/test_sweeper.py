"""The poll sweeper: running BES jobs are polled outside arq, and no parked run is forgotten."""

from __future__ import annotations

import time

import pytest

from tests.integration.fleet import Fleet, until
from worker.parking import ParkedRuns
from worker.schemas import RunState

pytestmark = pytest.mark.timeout(180)


async def _parked(fleet: Fleet) -> list[str]:
    ids: list[str] = [
        i.decode() if isinstance(i, bytes) else i
        for i in await fleet.redis.zrange(fleet.store.keys.polls, 0, -1)
    ]
    return ids


async def test_running_jobs_are_parked_and_polled_without_arq_jobs(fleet: Fleet) -> None:
    """While 6 jobs train, each run is parked, no step is on arq's queue, polls are counted."""
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 4})
    tenants = [await fleet.onboard(f"p{i}") for i in range(6)]
    fleet.start_workers(1)
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
    workers = fleet.start_workers(1)
    run_ids = [await fleet.retrain(t.id) for t in tenants]

    async def all_parked() -> bool:
        return sorted(await _parked(fleet)) == sorted(run_ids)

    await until(all_parked, within=20)
    workers[0].stop()
    # Stand in for a sweeper that claimed every parked run and was killed before polling:
    # each run is held back for the claim (4 s), and nobody moves it on.
    claimed = await ParkedRuns(fleet.redis, fleet.store.keys).claim_polls(100, 4.0)
    # A parked run may have been due only later: push the rest back the same way.
    for run_id in set(run_ids) - set(claimed):
        await fleet.redis.zadd(fleet.store.keys.polls, {run_id: int(time.time() * 1000) + 4000})
    released_at = time.monotonic() + 4.0
    fleet.start_workers(1)
    runs = await fleet.wait_terminal(run_ids, within=60)
    assert [r.state for r in runs] == [RunState.SUCCEEDED] * 4, [r.error for r in runs]
    assert time.monotonic() >= released_at
    stats = await fleet.training_stats()
    assert stats["jobs_started"] == 4


async def test_cancelling_a_parked_run_ends_it_and_unparks_it(fleet: Fleet) -> None:
    """A cancel request reaches a parked run: cancelled, BES job cancelled, off the polls set."""
    await fleet.emulator("PUT", "/_emulator/settings", {"instant": True, "min_job_seconds": 120})
    tenant = await fleet.onboard("parked-cancel")
    fleet.start_workers(1)
    run_id = await fleet.retrain(tenant.id)

    async def parked() -> bool:
        return await _parked(fleet) == [run_id]

    await until(parked, within=20)
    assert await fleet.store.request_cancel(run_id)
    runs = await fleet.wait_terminal([run_id], within=30)
    assert runs[0].state is RunState.CANCELLED
    assert await _parked(fleet) == []
    stats = await fleet.training_stats()
    assert stats["running_now"] == 0
