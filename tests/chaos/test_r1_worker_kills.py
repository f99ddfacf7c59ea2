"""R1: workers SIGKILLed at random and restarted while tenants retrain again and again."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import pytest

from tests.chaos.support import (
    CHAOS_WORKER_SETTINGS,
    audit,
    errors_of,
    kill_and_restart,
    report,
    sizes,
    wait_all_terminal,
)
from tests.integration.fleet import Fleet
from worker.schemas import Lane


@dataclass(frozen=True)
class Size:
    """Tenants, runs per tenant (one after the other), workers, seconds between kills."""

    tenants: int
    runs_per_tenant: int
    workers: int
    kill_every: tuple[float, float]

    @property
    def runs(self) -> int:
        """Runs in all."""
        return self.tenants * self.runs_per_tenant


@pytest.mark.parametrize(
    "size",
    sizes(
        Size(tenants=30, runs_per_tenant=4, workers=3, kill_every=(1.5, 4.0)),
        Size(tenants=100, runs_per_tenant=5, workers=3, kill_every=(2.0, 5.0)),
        bounded_timeout=240,
        full_timeout=1800,
    ),
)
async def test_r1_random_worker_kills_lose_duplicate_and_reorder_nothing(
    fleet: Fleet, size: Size
) -> None:
    """Every run ends succeeded; one started BES job per run; deploys only move forward."""
    rng = random.Random(1)
    tenant_ids = [f"r1-{i:03d}" for i in range(size.tenants)]
    for index, tenant_id in enumerate(tenant_ids):
        await fleet.onboard(tenant_id, "new" if index % 5 == 4 else "classic", rows=120)
    # Jobs that take a while keep runs in flight when the kills land.
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 3})
    workers = fleet.start_workers(size.workers, **CHAOS_WORKER_SETTINGS)
    started = time.monotonic()
    run_ids: list[str] = []
    latest: dict[str, str] = {}

    async def keep_retraining() -> None:
        """Retrain each tenant again as soon as its previous run ended."""
        pending = {t: size.runs_per_tenant for t in tenant_ids}
        while pending:
            current = {r.id: r for r in await fleet.store.get_runs(list(latest.values()))}
            for tenant_id in list(pending):
                previous = latest.get(tenant_id)
                if previous is not None and not current[previous].state.terminal:
                    continue
                run_id = await fleet.retrain(tenant_id, Lane.BULK)
                assert run_id != previous, "a new run was coalesced into an ended one"
                run_ids.append(run_id)
                latest[tenant_id] = run_id
                pending[tenant_id] -= 1
                if not pending[tenant_id]:
                    del pending[tenant_id]
            await asyncio.sleep(0.3)

    kills = 0

    async def chaos() -> None:
        nonlocal kills
        while True:
            await asyncio.sleep(rng.uniform(*size.kill_every))
            await kill_and_restart(rng.choice(workers))
            kills += 1

    chaos_task = asyncio.create_task(chaos())
    try:
        await asyncio.wait_for(keep_retraining(), timeout=size.runs * 3)
        await wait_all_terminal(fleet, run_ids, within=120)
    finally:
        chaos_task.cancel()
        await asyncio.gather(chaos_task, return_exceptions=True)
    # The last kills may have stalled steps; give the fleet time to finish without chaos.
    await wait_all_terminal(fleet, run_ids, within=90)
    seconds = time.monotonic() - started
    result = await audit(fleet, run_ids, tenant_ids)
    report(
        "R1",
        size=size.runs,
        workers=size.workers,
        kills=kills,
        seconds=round(seconds, 1),
        **result.figures(),
    )
    assert result.runs == size.runs
    assert result.lost == 0, result
    assert result.double_started == 0, result
    assert result.backward_deploys == 0, result
    assert result.stale_endpoints == 0, result
    assert result.jobs_started == size.runs, result
    runs = await fleet.store.get_runs(run_ids)
    assert result.succeeded == size.runs, errors_of(runs)
