"""Poll schedule: age-based without history, shaped by the expected duration with it."""

from __future__ import annotations

import pytest

from worker.polling import MIN_SAMPLES, NEAR_END_MIN, expected_duration, poll_interval


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


def test_expected_duration_needs_enough_samples() -> None:
    """Too little history gives no estimate; enough gives a low quantile, not the mean."""
    assert expected_duration([5.0] * (MIN_SAMPLES - 1)) is None
    samples = [5.0 + i for i in range(10)] + [500.0]
    assert expected_duration(samples) == 7.0
    assert expected_duration(list(reversed(samples))) == 7.0


def test_known_duration_skips_polls_until_shortly_before_the_end() -> None:
    """A 5 s job is next polled at 4.5 s of age, whatever its age now."""
    assert poll_interval(0.5, 0.5, 90, expected=5.0) == pytest.approx(4.0)
    assert poll_interval(4.0, 0.5, 90, expected=5.0) == pytest.approx(0.5)


def test_known_duration_polls_often_near_and_after_the_expected_end() -> None:
    """Past 90 % of the estimate, polls come every 5 % of the age, not below the floor."""
    assert poll_interval(4.6, 0.5, 90, expected=5.0) == pytest.approx(0.23)
    assert poll_interval(1.9, 0.5, 90, expected=2.0) == NEAR_END_MIN
    assert poll_interval(600, 0.5, 90, expected=600.0) == pytest.approx(30.0)
    assert poll_interval(5000, 0.5, 90, expected=600.0) == 90


def test_long_expected_jobs_are_polled_at_most_the_maximum_apart() -> None:
    """Far from the expected end the wait is capped (the slot lease needs renewing), jittered."""
    assert poll_interval(1.0, 0.5, 90, expected=1200.0) == 90
    assert poll_interval(1.0, 0.5, 90, jitter=1.0, expected=1200.0) == pytest.approx(99.0)
    assert poll_interval(1000.0, 0.5, 90, expected=1200.0) == pytest.approx(80.0)
