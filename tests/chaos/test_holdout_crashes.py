"""The holdout gate's crash points: the worker dies right after the split is written, the
staging endpoint PATCHed, a scoring job submitted and a scoring job started; every run still
ends with one started training job, one started scoring job per scored blob and the decision
its recorded blobs give (recomputed), the deployed model served.

Each point gets its own worker (own queue and key prefix), as in R2. Two rounds per tenant:
the onboarding run (no deployed model: the challenger alone is scored) and a run on drifted
data (champion and challenger scored on the same rows).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from emulator import datagen
from tests.chaos.support import report, serves_latest_model, sizes
from tests.chaos.test_r2_crash_points import Group, crashes_at_point, group_for, supervise
from tests.integration.fleet import Fleet
from tests.integration.holdout_checks import holdout_problems
from tests.integration.test_holdout_gate import data_at
from worker.blobs import training_data_path
from worker.evaluate import Gate, HoldoutSettings
from worker.failpoints import GATE_POINTS
from worker.schemas import Lane, RunState

GATE = Gate(evaluation="holdout", holdout=HoldoutSettings(label="cnt", min_rows=20))
SETTINGS = {
    "RETRAINQ_JOB_TIMEOUT_SECONDS": "5",
    "RETRAINQ_RECONCILE_GRACE_SECONDS": "1",
    "RETRAINQ_SWEEP_CLAIM_SECONDS": "2",
    "RETRAINQ_SCORING__STAGING_SETTLE_SECONDS": "0",  # the emulator serves a PATCH at once
    "RETRAINQ_SCORING__POLL_SECONDS": "0.3",
}


async def run_round(groups: list[Group], supervisor: asyncio.Task[None]) -> list[list[str]]:
    """Retrain every tenant of every group and wait until their runs end."""
    rounds: list[list[str]] = []
    for group in groups:
        ids = [await group.fleet.retrain(t, Lane.BULK) for t in group.tenant_ids]
        group.run_ids += ids
        rounds.append(ids)
    for group, ids in zip(groups, rounds, strict=True):
        waiting = asyncio.create_task(group.fleet.wait_terminal(ids, within=300))
        await asyncio.wait({waiting, supervisor}, return_when=asyncio.FIRST_COMPLETED)
        if supervisor.done():
            waiting.cancel()
            supervisor.result()
        await waiting
    return rounds


@pytest.fixture
async def groups(fleet: Fleet) -> object:
    """Groups whose workers are stopped at the end of the test."""
    made: list[Group] = []
    yield made
    for group in made:
        group.fleet.stop_workers()


@pytest.mark.parametrize("tenants", sizes(2, 5, bounded_timeout=420, full_timeout=1200))
async def test_a_crash_at_each_gate_point_starts_no_second_scoring_job(
    fleet: Fleet, groups: list[Group], tenants: int
) -> None:
    """4 points x N tenants x 2 rounds: every run succeeds once, every scored blob was
    written by exactly one started scoring job, every decision recomputes from its blobs."""
    for point in sorted(GATE_POINTS):
        group = group_for(fleet, point)
        groups.append(group)
        for index in range(tenants):
            tenant_id = f"{group.fleet.store.keys.prefix}-{index}"
            await group.fleet.onboard(tenant_id, rows=300, gate=GATE)
            group.tenant_ids.append(tenant_id)
        await asyncio.to_thread(
            group.fleet.start_workers,
            1,
            RETRAINQ_REDIS__PREFIX=group.fleet.store.keys.prefix,
            RETRAINQ_REDIS__QUEUE_NAME=group.fleet.queue.queue_name,
            RETRAINQ_FAILPOINTS=json.dumps([point]),
            **SETTINGS,
        )
    supervisor = asyncio.create_task(supervise(groups))
    try:
        await run_round(groups, supervisor)
        for group in groups:
            for tenant_id in group.tenant_ids:
                path = training_data_path(tenant_id, "v2")
                drifted = datagen.bike_rental_csv(tenant_id, 300, seed=3, drift=True)
                await fleet.blobs.upload(path, drifted.encode())
                await group.fleet.store.update_tenant(tenant_id, data_at(path))
        await run_round(groups, supervisor)
    finally:
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
    stats = await fleet.emulator("GET", "/_emulator/stats")
    trained = stats["web_services"]["Bike Rental Training"]["started_jobs_by_output"]
    scored = stats["web_services"]["Bike Rental Scoring"]["started_jobs_by_output"]
    figures: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for group in groups:
        store = group.fleet.store
        runs = await store.get_runs(group.run_ids)
        crashed = await crashes_at_point(fleet, group, runs)
        outputs = [job.output_path for run in runs for job in run.scoring_jobs]
        starts = [scored.get(f"retrainq/{path}", 0) for path in outputs]
        for run in runs:
            history = {model.run_id for model in await store.model_history(run.tenant_id)}
            if run.state is not RunState.SUCCEEDED:
                problems.append(f"{group.point}: {run.id} {run.state.value}: {run.error}")
                continue
            problems += await holdout_problems(fleet, run, GATE, history)
            if trained.get(f"retrainq/{run.outputs.model_path}", 0) != 1:
                problems.append(f"{group.point}: {run.id} training not started once")
        stale = 0
        for tenant_id in group.tenant_ids:
            stale += 0 if await serves_latest_model(group.fleet, tenant_id) else 1
        figures[group.point] = {
            "runs": len(runs),
            "crashed_at_point": crashed,
            "worker_exits": group.crashes,
            "succeeded": sum(r.state is RunState.SUCCEEDED for r in runs),
            "scored_blobs": len(outputs),
            "scoring_not_started_once": sum(s != 1 for s in starts),
            "scoring_orphans": sum(j.orphaned_submissions for r in runs for j in r.scoring_jobs),
            "stale_endpoints": stale,
        }
        row = figures[group.point]
        if row["crashed_at_point"] != len(runs) or row["scoring_not_started_once"] or stale:
            problems.append(f"{group.point}: {row}")
    report("holdout-crashes", tenants=tenants, points=figures)
    assert not problems, "\n".join(problems)
