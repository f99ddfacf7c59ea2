"""A batch's state, throughput and ETA from its counters (``producer/api/progress.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from producer.api.progress import batch_state, batch_status, pace
from worker.schemas import Batch

START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ({"queued": 1, "succeeded": 4}, "running"),
        ({"succeeded": 5}, "succeeded"),
        ({"succeeded": 3, "rejected": 2}, "succeeded"),
        ({"failed": 5}, "failed"),
        ({"failed": 4, "cancelled": 1}, "failed"),
        ({"succeeded": 4, "failed": 1}, "finished_with_failures"),
        ({"rejected": 2, "failed": 2, "cancelled": 1}, "finished_with_failures"),
        ({"cancelled": 5}, "cancelled"),
        ({"succeeded": 3, "cancelled": 2}, "cancelled"),
    ],
)
def test_a_batch_state_says_what_became_of_its_runs(counts: dict[str, int], state: str) -> None:
    """Running until every run ended; then by outcome, failures never reading as success."""
    assert batch_state(counts, 5) == state


def test_the_pace_is_unknown_while_quick_failures_are_all_that_ended() -> None:
    """Six quick failures while 24 runs train say nothing about the batch's pace."""
    assert pace({"failed": 6, "training": 24}, 30, 2.0) == (None, None)


def test_the_pace_is_unknown_until_two_runs_ended() -> None:
    """Nothing ended, or one run: unknown; two, with none in flight: a rate since creation."""
    assert pace({"queued": 4}, 4, 10.0) == (None, None)
    assert pace({"succeeded": 1, "queued": 3}, 4, 10.0) == (None, None)
    assert pace({"succeeded": 2, "queued": 2}, 4, 10.0) == (0.2, 10.0)


def test_the_pace_counts_from_the_batch_start_over_runs_ended() -> None:
    """30 of 100 ended in 60 s with 30 in flight: 0.5 runs/s, 140 s to go."""
    assert pace({"succeeded": 25, "failed": 5, "training": 30, "waiting_slot": 40}, 100, 60) == (
        0.5,
        140.0,
    )


def test_an_ended_batch_has_no_eta_left_and_keeps_the_pace_it_had() -> None:
    """ETA 0 once every run ended; the rate is measured up to the last run's end."""
    batch = Batch(id="b" * 32, total=4, created_at=START)
    last = START + timedelta(seconds=8)
    counters = {"n:succeeded": 3, "n:failed": 1, "last_finished_ms": int(last.timestamp() * 1000)}
    status = batch_status(batch, counters, now=START + timedelta(hours=1))
    assert (status.state, status.throughput_per_second, status.eta_seconds) == (
        "finished_with_failures",
        0.5,
        0.0,
    )


def test_a_small_batch_gets_a_pace_once_its_one_run_ended() -> None:
    """A batch of one needs only its one run; an empty batch is done with no pace."""
    one = Batch(id="c" * 32, total=1, created_at=START)
    status = batch_status(one, {"n:succeeded": 1}, now=START + timedelta(seconds=4))
    assert (status.state, status.throughput_per_second, status.eta_seconds) == (
        "succeeded",
        0.25,
        0.0,
    )
    empty = Batch(id="d" * 32, total=0, created_at=START)
    status = batch_status(empty, {}, now=START)
    assert (status.state, status.progress, status.throughput_per_second, status.eta_seconds) == (
        "succeeded",
        1.0,
        None,
        0.0,
    )
