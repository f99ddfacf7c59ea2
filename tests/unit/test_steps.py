"""Pure parts of the step machine: poll intervals and failure backoff."""

from __future__ import annotations

import random

import pytest

from worker.steps import failure_backoff, poll_interval


def test_poll_interval_grows_with_age_within_bounds() -> None:
    """Young jobs are polled at the minimum, old ones at the maximum, in between grows."""
    assert poll_interval(0, 0.5, 15) == 0.5
    assert poll_interval(10, 0.5, 15) == 2.0
    assert poll_interval(10_000, 0.5, 15) == 15


def test_poll_jitter_stretches_the_wait_by_at_most_a_tenth() -> None:
    """Jitter 0 is the plain interval, jitter 1 adds 10 %; never shorter."""
    assert poll_interval(100, 0.5, 90, jitter=0.0) == 20.0
    assert poll_interval(100, 0.5, 90, jitter=1.0) == pytest.approx(22.0)
    assert poll_interval(10_000, 0.5, 90, jitter=0.5) == pytest.approx(94.5)


def test_failure_backoff_is_jittered_exponential_and_capped() -> None:
    """Each failure doubles the ceiling; the wait stays within [ceiling/2, ceiling]."""
    rng = random.Random(1)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (4, 8.0), (30, 60.0)]:
        delay = failure_backoff(failures, rng)
        assert ceiling / 2 <= delay <= ceiling
