"""The CLI's batch bar label and a run's gate line (``producer/cli/render.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from producer.api.examples import RUN
from producer.cli.render import bar_text, gate_reached
from producer.schemas import BatchStatus
from worker.schemas import Run

STATUS = BatchStatus(
    id="a" * 32,
    created_at=datetime(2026, 12, 4, tzinfo=UTC),
    reason="bulk",
    total=5,
    done=5,
    progress=1.0,
    counts={"training": 0, "succeeded": 4, "failed": 1},
    state="finished_with_failures",
    throughput_per_second=0.5,
    eta_seconds=0.0,
)


def test_a_finished_bar_names_the_outcome_not_zero_runs_training() -> None:
    """The final label says how the batch ended and leaves zero counts out."""
    assert bar_text(STATUS) == "finished with failures · succeeded 4 · failed 1"
    running = STATUS.model_copy(update={"state": "running", "counts": {"training": 2}})
    assert bar_text(running) == "running · training 2"


def test_a_run_that_failed_before_its_gate_says_not_reached() -> None:
    """Failed or cancelled with no decision: not reached; otherwise no gate line."""
    expected = {"failed": "not reached", "cancelled": "not reached", "training": None}
    for state, line in expected.items():
        run = Run.model_validate(RUN | {"state": state, "decision": None})
        assert gate_reached(run) == line
