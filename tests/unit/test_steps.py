"""Pure parts of the step machine: failure backoff."""

from __future__ import annotations

import random

from worker.steps import failure_backoff


def test_failure_backoff_is_jittered_exponential_and_capped() -> None:
    """Each failure doubles the ceiling; the wait stays within [ceiling/2, ceiling]."""
    rng = random.Random(1)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (4, 8.0), (30, 60.0)]:
        delay = failure_backoff(failures, rng)
        assert ceiling / 2 <= delay <= ceiling
