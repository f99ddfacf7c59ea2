"""Putting a run in a given state for a test, through the ledger and a real transition."""

from __future__ import annotations

from worker.evaluate import Decision
from worker.run import model as m
from worker.run.ledger import Placement
from worker.run.model import Run, RunState
from worker.schemas import utcnow
from worker.store import Store

_DECISION = Decision(accepted=True, reason="set by a test", metric="test")

# A transition that leads into each state (none leads back to queued).
INTO: dict[RunState, m.Transition] = {
    RunState.WAITING_SLOT: m.Waiting(),
    RunState.SUBMITTING: m.Granted(bes_endpoint=0),
    RunState.TRAINING: m.JobStarted(),
    RunState.EVALUATING: m.JobFinished(),
    RunState.DEPLOYING: m.Judged(metrics={}, decision=_DECISION),
    RunState.SUCCEEDED: m.Deployed(deployed=True),
    RunState.REJECTED: m.Rejected(metrics={}, decision=_DECISION),
    RunState.FAILED: m.Failed(error="failed by a test", error_code="test"),
    RunState.CANCELLED: m.Cancelled(),
}


async def put_in_state(
    store: Store,
    run: Run,
    state: RunState,
    *,
    due_in: float | None = None,
    park_in: float | None = None,
    **fields: object,
) -> Run:
    """Move ``run`` into ``state`` (its record compare-and-set like a step's) and return it.

    ``fields`` are set too, through the transition's own fields where it has them.
    """
    transition = INTO[state]
    if fields:
        transition = type(transition).model_validate({**transition.changes(), **fields})
    placement = Placement(due_in=due_in, park_in=park_in)
    return await store.ledger.apply(run, (transition,), utcnow(), placement)
