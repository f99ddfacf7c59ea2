"""The retrain pipeline end to end: arq workers in this event loop, real Redis, Azurite and the
emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from producer.devtools.emulated import training_services
from tests.integration.fleet import Fleet, dump, sample_rows, started_twice, until
from worker.evaluate import Gate
from worker.redisio import reply
from worker.schemas import Lane, RunState

pytestmark = pytest.mark.timeout(240)

T = TypeVar("T")


async def test_fifty_tenants_retrain_concurrently_and_serve_their_own_models(
    fleet: Fleet,
) -> None:
    """40 classic endpoints and 10 new services: all succeed, each scores its own model."""
    tenants = [await fleet.onboard(f"c{i:02d}") for i in range(40)]
    tenants += [await fleet.onboard(f"n{i:02d}", "new") for i in range(10)]
    run_ids = [await fleet.retrain(t.id) for t in tenants]
    await fleet.drain(2)
    runs = await fleet.wait_terminal(run_ids, within=0)
    failed = [(r.tenant_id, r.state.value, r.error) for r in runs if r.state != RunState.SUCCEEDED]
    assert not failed, dump(failed)
    stats = await fleet.training_stats()
    assert stats["jobs_started"] == 50
    assert started_twice(stats) == {}
    for tenant in tenants[::7] + tenants[-3:]:
        rows = sample_rows(fleet, tenant.id)
        assert await fleet.score(tenant, rows) == pytest.approx(fleet.expected(tenant.id, rows))


async def test_a_model_failing_the_gate_is_rejected_and_the_old_one_keeps_serving(
    fleet: Fleet,
) -> None:
    """A retrain on drifted data that misses the gate ends rejected; scoring is unchanged."""
    tenant = await fleet.onboard("gated")
    first_id = await fleet.retrain(tenant.id)
    await fleet.drain()
    first = await fleet.wait_terminal([first_id], within=0)
    assert first[0].state is RunState.SUCCEEDED, first[0].error
    rows = sample_rows(fleet, tenant.id)
    before = await fleet.score(tenant, rows)
    await fleet.store.update_tenant(
        tenant.id, lambda t: t.model_copy(update={"gate": Gate(threshold=2.0)})
    )
    path = await fleet.upload(tenant.id, version=2, drift=True)
    await fleet.store.update_tenant(tenant.id, lambda t: t.model_copy(update={"data_path": path}))
    second_id = await fleet.retrain(tenant.id)
    await fleet.drain()
    second = await fleet.wait_terminal([second_id], within=0)
    assert second[0].state is RunState.REJECTED
    assert second[0].decision is not None
    assert not second[0].decision.accepted
    assert second[0].decision.reason
    assert await fleet.score(tenant, rows) == before


async def test_the_service_cap_bounds_running_bes_jobs(fleet: Fleet) -> None:
    """With a cap of 5, the emulator never sees more than 5 jobs of the service running."""
    tenants = [await fleet.onboard(f"cap{i:02d}") for i in range(30)]
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 0.5})
    services = training_services(fleet.config, fleet.emulator_url)
    services["default"]["max_running"] = 5
    run_ids = [await fleet.retrain(t.id, Lane.BULK) for t in tenants]
    await fleet.drain(2, RETRAINQ_TRAINING_SERVICES=json.dumps(services))
    runs = await fleet.wait_terminal(run_ids, within=0)
    assert all(r.state is RunState.SUCCEEDED for r in runs), dump([r.error for r in runs])
    stats = await fleet.training_stats()
    assert stats["jobs_started"] == 30
    assert stats["max_concurrent_running"] <= 5
    assert stats["max_concurrent_running"] >= 2  # the cap was actually used concurrently


async def test_runs_of_one_tenant_finishing_out_of_order_leave_the_newer_model(
    fleet: Fleet,
) -> None:
    """An older run reaching deploy after a newer one is superseded, not deployed."""
    tenant = await fleet.onboard("order")
    old_id = await fleet.retrain(tenant.id)
    await fleet.drain()
    old = await fleet.wait_terminal([old_id], within=0)
    assert old[0].state is RunState.SUCCEEDED
    path = await fleet.upload(tenant.id, version=2, drift=True)
    permissive = Gate(max_regression=None)
    await fleet.store.update_tenant(
        tenant.id, lambda t: t.model_copy(update={"data_path": path, "gate": permissive})
    )
    newer_id = await fleet.retrain(tenant.id)
    await fleet.drain()
    newer = await fleet.wait_terminal([newer_id], within=0)
    assert newer[0].state is RunState.SUCCEEDED
    # Replay the old run's deploy step as if it finished late.
    late = old[0].model_copy(update={"state": RunState.DEPLOYING})
    await reply(
        fleet.redis.hset(
            fleet.store.keys.run(late.id),
            mapping={"doc": late.model_dump_json(), "state": "deploying"},
        )
    )
    await fleet.queue.advance(late.id, late.version)
    await fleet.drain()  # the late step has run
    replayed = await fleet.store.get_run(late.id)
    assert replayed is not None
    assert replayed.state is RunState.SUCCEEDED
    assert replayed.error is not None
    assert replayed.error.startswith("superseded: ")
    current = await fleet.store.get_tenant(tenant.id)
    assert current is not None
    assert current.deployed is not None
    assert current.deployed.run_id == newer[0].id
    rows = sample_rows(fleet, tenant.id)
    expected = fleet.expected(tenant.id, rows, drift=True)
    assert await fleet.score(tenant, rows) == pytest.approx(expected)


async def test_an_interactive_run_goes_ahead_of_500_waiting_bulk_runs(
    fleet: Fleet,
) -> None:
    """Interactive work is dispatched before a deep bulk backlog."""
    bulk = await in_chunks([fleet.onboard(f"bulk{i:03d}", rows=60) for i in range(500)])
    urgent = await fleet.onboard("urgent")
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 1.0})
    fleet.run_workers(1)
    await in_chunks([fleet.retrain(tenant.id, Lane.BULK) for tenant in bulk])

    # Wait until the bulk lane has filled every slot and the rest are waiting.
    waiting_key = "retrainq:waiting:default:bulk"

    async def backlog_is_deep() -> bool:
        return int(await reply(fleet.redis.zcard(waiting_key))) >= 250

    await until(backlog_is_deep, within=180)
    behind = {str(m) for m in await reply(fleet.redis.zrange(waiting_key, 0, -1))}
    run_id = await fleet.retrain(urgent.id, Lane.INTERACTIVE)

    async def bes_job_started() -> bool:
        run = await fleet.store.get_run(run_id)
        return run is not None and run.bes_started

    await until(bes_job_started, within=120)
    # Decided from the runs' recorded phases, not from the clock: of the 250+ bulk runs that
    # were waiting when the urgent run arrived, in arrival order all would go ahead of it. With
    # the lanes, only those granted before its own first step ran (one wave on a quiet machine,
    # two on a busy one, whose arq queue is slower to reach that step) go ahead.
    urgent_run = await fleet.store.get_run(run_id)
    assert urgent_run is not None
    granted = urgent_run.phases[RunState.SUBMITTING.value]
    cap = int(training_services(fleet.config, fleet.emulator_url)["default"]["max_running"])
    ahead = 0
    for bulk_run in await fleet.store.get_runs(sorted(behind)):
        began = bulk_run.phases.get(RunState.SUBMITTING.value)
        ahead += began is not None and began < granted
    assert ahead <= 3 * cap < len(behind), (ahead, cap, len(behind))


async def in_chunks(calls: list[Coroutine[Any, Any, T]], size: int = 50) -> list[T]:
    """Await ``calls`` ``size`` at a time, results in order."""
    results: list[T] = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*calls[start : start + size])
    return results
