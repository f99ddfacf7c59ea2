"""Cron validation: expressions that never fire or fire too often are refused (worker/cron.py)."""

from __future__ import annotations

import pytest

from worker.cron import check_interval, shortest_gap_seconds, validate_cron


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_on_a_date_that_never_comes_is_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="never fires"):
        validate_cron(expression)


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "*/5 * * * *", "0 3 * * mon"])
def test_crons_that_fire_are_accepted(expression: str) -> None:
    assert validate_cron(expression) == expression


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("* * * * *", 60),
        ("*/5 * * * *", 300),
        ("0 */2 * * *", 7200),
        ("0 0 * * *", 86400),
        ("10,20 3 * * *", 600),
        ("59 23 * * *", 86400),
        ("58,59 0,23 * * *", 60),
        ("59 23,0 * * *", 3600),
    ],
)
def test_the_shortest_gap_follows_minutes_hours_and_midnight(expression: str, gap: int) -> None:
    assert shortest_gap_seconds(expression) == gap


def test_a_cron_firing_more_often_than_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at most every 5 min"):
        check_interval("*/2 * * * *", 300)
    check_interval("*/5 * * * *", 300)
