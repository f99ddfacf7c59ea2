"""R2: the worker dies at each named crash point; every run still ends right, effects once.

Each crash point gets its own worker (own queue and key prefix, so only its runs meet it),
started with ``RETRAINQ_FAILPOINTS=[point]``: the worker exits (code 137, like SIGKILL) the
first time each run reaches the point, a supervisor restarts it, and the run must go on to
``succeeded`` with exactly one started BES job, its model served, and deploy calls repeated
only for steps a crash cut short. A crash also kills the steps of the group's other runs
that were in flight (as a real SIGKILL would).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from producer.devtools.processes import ServiceError
from tests.chaos.support import errors_of, report, serves_latest_model, sizes
from tests.integration.fleet import Fleet
from worker.failpoints import ARCHIVE_POINTS, CRASH_EXIT_CODE, GATE_POINTS, POINTS
from worker.keys import Keys
from worker.queue import StepQueue
from worker.run.model import Run
from worker.schemas import Lane, RunState
from worker.store import Store

CLASSIC_ONLY = {"deploy.after_patch"}
NEW_ONLY = {"deploy.after_arm_put"}
SCORING = "Bike Rental Scoring"


@dataclass
class Group:
    """The runs, worker and crash count of one crash point."""

    point: str
    fleet: Fleet
    tenant_ids: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    crashes: int = 0


def group_for(fleet: Fleet, point: str) -> Group:
    """A view of ``fleet`` on its own key prefix and queue, with its own workers and logs."""
    tag = point.replace(".", "-").replace("_", "-")
    view = copy.copy(fleet)
    view.workers = []
    view.log_dir = fleet.log_dir / tag
    view.store = Store(fleet.redis, Keys(f"fp-{tag}"))
    view.queue = StepQueue(fleet.pool, f"fp-{tag}:queue")
    return Group(point, view)


async def supervise(groups: list[Group]) -> None:
    """Restart any worker that exited (what Kubernetes does for a crashed pod)."""
    while True:
        for group in groups:
            for worker in group.fleet.workers:
                if worker.proc is None or worker.proc.poll() is not None:
                    if worker.proc is not None:
                        assert worker.proc.returncode == CRASH_EXIT_CODE, worker.log_tail()
                        group.crashes += 1
                    worker.stop()
                    # A restarted worker may reach its point again before its port is seen
                    # open; it is then dead already and restarted on the next round.
                    with contextlib.suppress(ServiceError):
                        await asyncio.to_thread(worker.start, 60)
        await asyncio.sleep(0.1)


@pytest.fixture
async def stopped_after(fleet: Fleet) -> AsyncIterator[list[Group]]:
    """Groups whose workers are stopped at the end of the test."""
    groups: list[Group] = []
    yield groups
    for group in groups:
        group.fleet.stop_workers()


async def crashes_at_point(fleet: Fleet, group: Group, runs: Sequence[Run]) -> int:
    """How many of the group's runs recorded a crash at its point (the failpoint's key)."""
    keys = group.fleet.store.keys
    found = [await fleet.redis.exists(keys.failpoint(group.point, run.id)) for run in runs]
    return sum(1 for exists in found if exists)


@pytest.mark.parametrize(
    "runs_per_point",
    sizes(3, 10, bounded_timeout=240, full_timeout=900),
)
async def test_r2_a_crash_at_every_named_point_costs_no_duplicate_effect(
    fleet: Fleet, stopped_after: list[Group], runs_per_point: int
) -> None:
    """7 crash points x N runs: all succeed, one started job each, deploys not repeated."""
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 1})
    groups = stopped_after
    # The archiver's points: test_archive_crashes; the holdout gate's: test_holdout_crashes.
    for point in sorted(POINTS.keys() - ARCHIVE_POINTS - GATE_POINTS):
        group = group_for(fleet, point)
        groups.append(group)
        for index in range(runs_per_point):
            tenant_id = f"{group.fleet.store.keys.prefix}-{index}"
            kind = (
                "new"
                if point in NEW_ONLY or (point not in CLASSIC_ONLY and index == 2)
                else "classic"
            )
            await group.fleet.onboard(tenant_id, kind, rows=120)
            group.tenant_ids.append(tenant_id)
    for group in groups:
        await asyncio.to_thread(
            group.fleet.start_workers,
            1,
            RETRAINQ_REDIS__PREFIX=group.fleet.store.keys.prefix,
            RETRAINQ_REDIS__QUEUE_NAME=group.fleet.queue.queue_name,
            RETRAINQ_FAILPOINTS=json.dumps([group.point]),
            RETRAINQ_JOB_TIMEOUT_SECONDS="5",
            RETRAINQ_RECONCILE_GRACE_SECONDS="1",
            RETRAINQ_SWEEP_CLAIM_SECONDS="2",
        )
    started = time.monotonic()
    supervisor = asyncio.create_task(supervise(groups))
    try:
        for group in groups:
            for tenant_id in group.tenant_ids:
                group.run_ids.append(await group.fleet.retrain(tenant_id, Lane.BULK))
        for group in groups:
            waiting = asyncio.create_task(group.fleet.wait_terminal(group.run_ids, within=200))
            await asyncio.wait({waiting, supervisor}, return_when=asyncio.FIRST_COMPLETED)
            if supervisor.done():
                waiting.cancel()
                supervisor.result()  # raises what stopped the supervisor
            await waiting
    finally:
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
    seconds = time.monotonic() - started
    stats = await fleet.emulator("GET", "/_emulator/stats")
    by_output = stats["web_services"]["Bike Rental Training"]["started_jobs_by_output"]
    endpoints = stats["web_services"][SCORING]["endpoints"]
    figures: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for group in groups:
        store = group.fleet.store
        runs = await store.get_runs(group.run_ids)
        crashed = await crashes_at_point(fleet, group, runs)
        starts = [by_output.get(f"retrainq/{r.outputs.model_path}", 0) for r in runs]
        patches = [
            endpoints[t.endpoint_name]["patches"]
            for t in await store.get_tenants(group.tenant_ids)
            if t.endpoint_name is not None
        ]
        arm_writes = [
            s["puts"] + s["patches"]
            for name, s in stats["arm_web_services"].items()
            if name.split("/", 1)[1].removeprefix("rq-") in group.tenant_ids
        ]
        stale = 0
        for tenant_id in group.tenant_ids:
            stale += 0 if await serves_latest_model(group.fleet, tenant_id) else 1
        # A deploy call (idempotent: same model, same endpoint) is repeated only when a crash
        # cut its step short: the point itself, or a sibling run crashing the shared worker.
        repeat_ok = 1 + group.crashes
        figures[group.point] = {
            "runs": len(runs),
            "crashed_at_point": crashed,
            "worker_exits": group.crashes,
            "succeeded": sum(r.state is RunState.SUCCEEDED for r in runs),
            "double_started": sum(s > 1 for s in starts),
            "not_started_once": sum(s != 1 for s in starts),
            "orphaned_submissions": sum(r.orphaned_submissions for r in runs),
            "max_patches": max(patches, default=0),
            "max_arm_writes": max(arm_writes, default=0),
            "stale_endpoints": stale,
        }
        row = figures[group.point]
        if (
            row["succeeded"] != runs_per_point
            or row["crashed_at_point"] != runs_per_point
            or row["not_started_once"]
            or row["max_patches"] > repeat_ok
            or row["max_arm_writes"] > repeat_ok
            or stale
        ):
            problems.append(f"{group.point}: {row} {errors_of(runs)}")
        if group.point == "bes.after_submit" and row["orphaned_submissions"] < runs_per_point:
            problems.append(f"{group.point}: the lost submissions were not counted as orphans")
    report("R2", runs_per_point=runs_per_point, seconds=round(seconds, 1), points=figures)
    assert not problems, "\n".join(problems)
