"""Run and tenant records in a real Redis: coalescing, compare-and-set, batch counters and
the fleet view's page of tenants."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tests.runs import put_in_state
from worker.keys import Keys
from worker.schemas import (
    Batch,
    ClassicTarget,
    DeployedModel,
    Lane,
    NewServiceTarget,
    RunState,
    Tenant,
    utcnow,
)
from worker.store import RunRequest, StaleRecord, Store, TenantExists, TenantNotFound, now_ms


def tenant(tenant_id: str) -> Tenant:
    """A classic-target tenant with training data."""
    return Tenant(
        id=tenant_id,
        target=ClassicTarget(web_service_id="svc", resource_name="Bike Rental [trained model]"),
        data_path=f"data/{tenant_id}/v1.csv",
    )


@pytest.fixture
def store(redis: aioredis.Redis) -> Store:
    """A store on the flushed test Redis."""
    return Store(redis, Keys("t"))


async def test_onboarding_an_existing_id_is_refused(store: Store) -> None:
    """The second create of the same tenant id raises, the first record is kept."""
    await store.create_tenant(tenant("acme"))
    with pytest.raises(TenantExists):
        await store.create_tenant(tenant("acme").model_copy(update={"display_name": "other"}))
    kept = await store.get_tenant("acme")
    assert kept is not None
    assert kept.display_name == ""


async def test_second_request_returns_the_active_run_and_flags_a_rerun(store: Store) -> None:
    """One active run per tenant: a second request coalesces into it."""
    await store.create_tenant(tenant("acme"))
    first = await store.create_run(RunRequest(tenant_id="acme"))
    second = await store.create_run(RunRequest(tenant_id="acme", rerun_if_active=True))
    assert first.created
    assert not second.created
    assert second.run_id == first.run_id
    run = await store.get_run(first.run_id)
    assert run is not None
    assert run.rerun_requested
    assert run.seq == 1


async def test_a_finished_run_frees_the_tenant_for_a_new_one(store: Store) -> None:
    """After a terminal transition the next request creates a new run with a higher seq."""
    await store.create_tenant(tenant("acme"))
    first = await store.create_run(RunRequest(tenant_id="acme"))
    run = await store.get_run(first.run_id)
    assert run is not None
    await put_in_state(store, run, RunState.FAILED, due_in=None)
    second = await store.create_run(RunRequest(tenant_id="acme"))
    assert second.created
    newer = await store.get_run(second.run_id)
    assert newer is not None
    assert newer.seq > run.seq


async def test_compare_and_set_rejects_a_stale_writer(store: Store) -> None:
    """Two writers read version 0; only the first write lands."""
    await store.create_tenant(tenant("acme"))
    created = await store.create_run(RunRequest(tenant_id="acme"))
    run = await store.get_run(created.run_id)
    assert run is not None
    saved = await put_in_state(store, run, RunState.WAITING_SLOT, due_in=None)
    assert saved.version == 1
    with pytest.raises(StaleRecord):
        await put_in_state(store, run, RunState.FAILED, due_in=None)
    current = await store.get_run(run.id)
    assert current is not None
    assert current.state is RunState.WAITING_SLOT


async def test_batch_counters_follow_every_transition(store: Store) -> None:
    """Counts by state in a batch move with each run, and finish times are recorded."""
    tenants = [tenant(f"t{i}") for i in range(5)]
    for t in tenants:
        await store.create_tenant(t)
    batch = Batch(id="b1", total=5)
    await store.create_batch(batch)
    created = await store.create_runs(
        tenants, RunRequest(tenant_id="", lane=Lane.BULK, batch_id="b1")
    )
    assert all(c.created for c in created)
    runs = await store.get_runs([c.run_id for c in created])
    await put_in_state(store, runs[0], RunState.SUCCEEDED, due_in=None)
    await put_in_state(store, runs[1], RunState.FAILED, due_in=None)
    found = await store.get_batch("b1")
    assert found is not None
    _, counters = found
    assert counters["n:queued"] == 3
    assert counters["n:succeeded"] == 1
    assert counters["n:failed"] == 1
    assert "first_finished_ms" in counters
    assert await store.batch_run_ids("b1") == [c.run_id for c in created]


async def test_runs_for_unknown_tenants_are_refused(store: Store) -> None:
    """A run request for a tenant that does not exist raises TenantNotFound."""
    with pytest.raises(TenantNotFound):
        await store.create_run(RunRequest(tenant_id="ghost"))


async def test_an_older_model_never_replaces_a_newer_deployment(store: Store) -> None:
    """record_deployment refuses a model whose sequence is not newer than the deployed one."""
    await store.create_tenant(tenant("acme"))
    newer = DeployedModel(run_id="r2", seq=2, model_path="m2", deployed_at=utcnow())
    older = DeployedModel(run_id="r1", seq=1, model_path="m1", deployed_at=utcnow())
    assert await store.record_deployment("acme", newer)
    assert not await store.record_deployment("acme", older)
    current = await store.get_tenant("acme")
    assert current is not None
    assert current.deployed is not None
    assert current.deployed.run_id == "r2"
    assert [m.run_id for m in await store.model_history("acme")] == ["r2"]


async def _deploy(store: Store, tenant_id: str) -> None:
    model = DeployedModel(run_id="r0", seq=1, model_path="m0", deployed_at=utcnow())
    assert await store.record_deployment(tenant_id, model)


async def _run_ending(store: Store, tenant_id: str, state: RunState | None) -> str:
    """A new run of the tenant, moved to ``state`` (left queued when None)."""
    created = await store.create_run(RunRequest(tenant_id=tenant_id))
    run = await store.get_run(created.run_id)
    assert run is not None
    if state is not None:
        await put_in_state(store, run, state, due_in=None)
    return created.run_id


async def test_fleet_page_reads_each_tenants_model_and_latest_run_inside_redis(
    store: Store, redis: aioredis.Redis
) -> None:
    """Kind, deployed model and latest run state of every tenant on the page, offboarded
    tenants left out, and the recent runs whose records still exist."""
    for tenant_id in ("fresh", "serving", "kept", "busy", "gone", "expired"):
        await store.create_tenant(tenant(tenant_id))
    await store.update_tenant(
        "busy", lambda t: t.model_copy(update={"target": NewServiceTarget(template_service="s")})
    )
    for tenant_id in ("serving", "kept", "expired"):
        await _deploy(store, tenant_id)
    await _run_ending(store, "serving", RunState.SUCCEEDED)
    await _run_ending(store, "kept", RunState.SUCCEEDED)
    await _run_ending(store, "kept", RunState.REJECTED)
    await _run_ending(store, "busy", None)
    await _run_ending(store, "gone", None)
    await store.update_tenant("gone", lambda t: t.model_copy(update={"deleted": True}))
    lost = await _run_ending(store, "expired", RunState.FAILED)
    await redis.delete(Keys("t").run(lost))

    page = await store.fleet_page(0, 100, since_ms=0)

    briefs = {(brief.kind, brief.deployed, brief.latest_state) for brief in page.tenants}
    assert len(page.tenants) == 5
    assert briefs == {
        ("classic", False, None),
        ("classic", True, "succeeded"),
        ("classic", True, "rejected"),
        ("new", False, "queued"),
        ("classic", True, None),
    }
    assert sorted(state for state, _ in page.recent) == [
        "queued",
        "rejected",
        "succeeded",
        "succeeded",
    ]
    assert all(created > 0 for _, created in page.recent)
    later = await store.fleet_page(0, 100, since_ms=now_ms() + 60_000)
    assert later.recent == []
    first, rest = await store.fleet_page(0, 2, 0), await store.fleet_page(2, 100, 0)
    assert len(first.tenants) == 2
    assert len(first.tenants) + len(rest.tenants) == 5


async def test_a_cancel_asked_during_a_step_keeps_the_run_due(store: Store) -> None:
    """A step that read the run before a cancel and saves it waiting or parked leaves it due
    (now), so the cancel is not put off until the run's next poll or slot."""
    await store.create_tenant(tenant("acme"))
    created = await store.create_run(RunRequest(tenant_id="acme"))
    read = await store.get_run(created.run_id)
    assert read is not None
    assert await store.request_cancel(created.run_id)
    waiting = await put_in_state(store, read, RunState.WAITING_SLOT, due_in=None)
    assert await store.is_due(created.run_id)
    await put_in_state(store, waiting, RunState.TRAINING, due_in=None, park_in=60)
    assert await store.is_due(created.run_id)
    assert (await store.ledger.due(now_ms() + 1)) == [created.run_id]


async def test_a_run_without_a_cancel_leaves_the_due_list_when_it_waits(store: Store) -> None:
    """The usual case: a run saved waiting or parked has no pending step."""
    await store.create_tenant(tenant("acme"))
    created = await store.create_run(RunRequest(tenant_id="acme"))
    run = await store.get_run(created.run_id)
    assert run is not None
    await put_in_state(store, run, RunState.WAITING_SLOT, due_in=None)
    assert not await store.is_due(created.run_id)
