"""A permanent remote error ends the run at once, with the remote code, tried once."""

from __future__ import annotations

from tests.integration.fleet import Fleet, dump
from worker.schemas import RunState, Tenant


async def test_an_undeclared_global_parameter_fails_the_run_at_once(fleet: Fleet) -> None:
    """BES answers 400 UnexpectedParameter: failed with that code, one submit, no retry."""
    await fleet.onboard("perm", global_parameters={"Alpha": "1"})
    run_id = await fleet.retrain("perm")
    await fleet.drain(1, within=60)
    (run,) = await fleet.wait_terminal([run_id], within=30)
    assert run.state is RunState.FAILED, dump(run.model_dump())
    assert run.error_code == "UnexpectedParameter", dump(run.model_dump())
    assert run.submit_attempts == 1, dump(run.model_dump())
    assert run.step_failures == 0, dump(run.model_dump())
    stats = await fleet.training_stats()
    assert stats["jobs_created"] == 0


async def test_a_run_whose_stored_data_path_is_foreign_fails_before_any_job(
    fleet: Fleet,
) -> None:
    """A path of another tenant stored before paths were checked: foreign_data_path, no job
    submitted (so no SAS of that blob was handed out)."""
    await fleet.onboard("victim")
    await fleet.onboard("thief")

    def point_at_victim(tenant: Tenant) -> Tenant:
        tenant.data_path = "data/victim/v1.csv"
        return tenant

    await fleet.store.update_tenant("thief", point_at_victim)
    run_id = await fleet.retrain("thief")
    await fleet.drain(1, within=60)
    (run,) = await fleet.wait_terminal([run_id], within=30)
    assert run.state is RunState.FAILED, dump(run.model_dump())
    assert run.error_code == "foreign_data_path", dump(run.model_dump())
    assert run.submit_attempts == 0, dump(run.model_dump())
    assert (await fleet.training_stats())["jobs_created"] == 0
