"""A permanent remote error ends the run at once, with the remote code, tried once."""

from __future__ import annotations

from tests.integration.fleet import Fleet, dump
from worker.schemas import RunState


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
