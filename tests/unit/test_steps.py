"""Pure parts of the step shell: where a run goes after a step, the policy from settings."""

from __future__ import annotations

from worker.run import machine as mc
from worker.run.ledger import Placement
from worker.steps import placement_of


def test_each_next_places_the_run_where_its_next_step_is_found() -> None:
    """Deferred: due later; parked: with the sweeper; waiting: in a waiting set; inline or
    ended: due after one step's timeout (overdue only if the step died)."""
    assert placement_of(mc.Step((), mc.Next.DEFER, delay=3.0), 12) == Placement(due_in=3.0)
    assert placement_of(mc.Step((), mc.Next.PARK, delay=7.0), 12) == Placement(park_in=7.0)
    assert placement_of(mc.Step((), mc.Next.WAIT_SLOT), 12) == Placement(waiting=True)
    assert placement_of(mc.Step((), mc.Next.CONTINUE), 12) == Placement(due_in=12)
    assert placement_of(mc.Step((), mc.Next.END), 12) == Placement(due_in=12)
