"""The bulk lane's order: expected durations from recent jobs and the scores runs wait under."""

from __future__ import annotations

from worker.bulk_order import (
    AGING,
    bulk_score,
    expected_seconds,
    median,
    pushed,
    recent_of,
)


def test_recent_durations_keep_the_newest_few() -> None:
    """A pushed duration goes first; only the last three are kept; the stored form parses."""
    value = None
    for seconds in (4.0, 5.04, 6.0, 7.0):
        value = pushed(value, seconds)
    assert value == "7.0,6.0,5.0"
    assert recent_of(value) == [7.0, 6.0, 5.0]
    assert recent_of(None) == []
    assert recent_of("") == []


def test_expected_is_the_tenants_median_else_the_services() -> None:
    """A tenant's own recent median wins; without history the service median; else unknown."""
    assert expected_seconds([9.0, 3.0, 4.0], 5.0) == 4.0
    assert expected_seconds([], 5.0) == 5.0
    assert expected_seconds([], None) is None
    assert median([2.0, 4.0]) == 3.0
    assert median([]) is None


def test_longer_expected_jobs_score_lower_and_are_granted_first() -> None:
    """Runs entering together are ordered longest expected first (lowest score first)."""
    expected = {"a": 5.0, "b": 74.0, "c": 0.5, "d": 12.0}
    order = sorted(expected, key=lambda run: bulk_score(1_000_000, expected[run]))
    assert order == ["b", "d", "a", "c"]


def test_without_history_the_order_is_the_age_order() -> None:
    """When nothing is known (or everything expects the same) older runs go first."""
    assert bulk_score(1_000, None) < bulk_score(2_000, None)
    assert bulk_score(1_000, 5.0) < bulk_score(2_000, 5.0)


def test_waiting_long_enough_is_never_overtaken() -> None:
    """A run expected d s shorter is overtaken only by runs entering within AGING * d s."""
    short, d = 5.0, 10.0
    entered = 0
    within = int(AGING * d * 1000) - 1
    beyond = int(AGING * d * 1000) + 1
    assert bulk_score(within, short + d) < bulk_score(entered, short)
    assert bulk_score(beyond, short + d) > bulk_score(entered, short)
