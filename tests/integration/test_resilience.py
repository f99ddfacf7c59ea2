"""The pipeline under remote faults and a lost queue: nothing lost, nothing duplicated.

Workers run in this event loop. Killed worker processes are the chaos suite's (R1, R3).
"""

from __future__ import annotations

import pytest

from tests.integration.fleet import Fleet, dump, started_twice, until
from worker.schemas import Lane, RunState

pytestmark = pytest.mark.timeout(300)


async def test_under_remote_faults_every_run_ends_with_one_started_job_at_most(
    fleet: Fleet,
) -> None:
    """10% 503/429, 5% failed jobs, dropped replies on submit and PATCH: all runs end."""
    tenants = [await fleet.onboard(f"f{i:02d}", rows=120) for i in range(24)]
    tenants += [await fleet.onboard(f"g{i:02d}", "new", rows=120) for i in range(6)]
    await fleet.emulator(
        "PUT",
        "/_emulator/faults",
        {
            "bes_submit": {"error_rate": 0.1, "error_status": 503, "commit_then_drop": 3},
            "bes_start": {"error_rate": 0.1, "error_status": 429},
            "bes_status": {"error_rate": 0.1, "error_status": 503},
            "management": {"error_rate": 0.1, "error_status": 429, "commit_then_drop": 3},
            "arm": {"error_rate": 0.1, "error_status": 503},
            "bes_job_failure_rate": 0.05,
        },
    )
    fleet.run_workers(2, RETRAINQ_THROTTLE_PAUSE_SECONDS="0.3")
    run_ids = [await fleet.retrain(t.id, Lane.BULK) for t in tenants]
    runs = await fleet.wait_terminal(run_ids, within=240)
    stats = await fleet.training_stats()
    assert started_twice(stats) == {}
    assert stats["jobs_started"] <= len(runs)
    # The three dropped submit replies left created-but-never-started jobs behind.
    assert stats["jobs_created"] >= stats["jobs_started"] + 3
    assert sum(r.orphaned_submissions for r in runs) >= 3
    failures = [r for r in runs if r.state is not RunState.SUCCEEDED]
    for run in failures:
        assert run.state is RunState.FAILED, dump(run.model_dump())
        assert run.error, dump(run.model_dump())
        assert run.error_code, dump(run.model_dump())
    # Transient faults are absorbed; only the injected job failures may fail runs.
    assert all(r.error_code == "bes_Failed" for r in failures), dump([r.error for r in failures])
    assert len(failures) <= 6


async def test_runs_survive_arq_losing_every_queued_job(fleet: Fleet) -> None:
    """The reconciler re-enqueues runs from their records when arq's queue is wiped.

    Polls are arq steps here (sweeper off), so the training runs' next steps are on the
    queue when it is wiped; with the sweeper they would be parked outside it.
    """
    tenants = [await fleet.onboard(f"l{i:02d}", rows=120) for i in range(10)]
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 2})
    fleet.run_workers(1, RETRAINQ_RECONCILE_GRACE_SECONDS="1", RETRAINQ_POLL_SWEEPER="false")
    run_ids = [await fleet.retrain(t.id, Lane.BULK) for t in tenants]

    async def jobs_running() -> bool:
        return bool((await fleet.training_stats())["running_now"] >= 5)

    await until(jobs_running, within=30)
    lost = await fleet.redis.delete("retrainq:queue")
    job_keys = [k async for k in fleet.redis.scan_iter("arq:job:*")]
    if job_keys:
        await fleet.redis.delete(*job_keys)
    assert lost == 1
    runs = await fleet.wait_terminal(run_ids, within=90)
    assert all(r.state is RunState.SUCCEEDED for r in runs), dump([r.error for r in runs])
    stats = await fleet.training_stats()
    assert stats["jobs_started"] == 10
    assert started_twice(stats) == {}
