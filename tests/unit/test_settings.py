"""Settings that must fit together (pure pydantic validation of worker/settings.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.settings import TrainingServiceConfig, WorkerSettings, describe_validation_error


def worker_settings(**values: object) -> WorkerSettings:
    """Worker settings from these values only (no environment, no .env)."""
    return WorkerSettings.model_validate(values)


def test_defaults_fit_together() -> None:
    """The defaults pass their own checks: a lease outlasts two of the longest poll gaps."""
    settings = worker_settings()
    assert settings.lease_seconds >= 2 * settings.poll_max_seconds


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lease_seconds": 100, "poll_max_seconds": 90}, "at least twice poll_max_seconds"),
        ({"poll_min_seconds": 5, "poll_max_seconds": 2}, "must not exceed poll_max_seconds"),
    ],
)
def test_polls_must_renew_leases_in_time(values: dict[str, float], message: str) -> None:
    """A lease shorter than two poll gaps, or a minimum gap above the maximum, is refused."""
    with pytest.raises(ValidationError, match=message):
        worker_settings(**values)


def test_a_lease_of_twice_the_poll_gap_is_enough() -> None:
    """The boundary itself is accepted."""
    assert worker_settings(lease_seconds=60, poll_max_seconds=30).lease_seconds == 60


@pytest.mark.parametrize("reserve", [4, 5])
def test_the_reserve_must_leave_bulk_a_slot(reserve: int) -> None:
    """A reserve of max_running or more would keep every bulk run waiting forever."""
    with pytest.raises(ValidationError, match="must be below max_running"):
        TrainingServiceConfig(max_running=4, interactive_reserve=reserve)
    assert TrainingServiceConfig(max_running=4, interactive_reserve=3).interactive_reserve == 3


@pytest.mark.parametrize(
    ("max_running", "reserve"), [(1, 0), (2, 1), (40, 1), (79, 1), (80, 2), (200, 5)]
)
def test_an_unset_reserve_is_one_slot_per_40_and_at_least_one(
    max_running: int, reserve: int
) -> None:
    """Without an interactive_reserve a service keeps one slot per 40 of max_running (at
    least one) for interactive runs; a single-slot service keeps none (bulk needs it)."""
    assert TrainingServiceConfig(max_running=max_running).interactive_reserve == reserve


def test_a_reserve_given_is_kept_even_zero() -> None:
    """An explicit reserve, 0 included, replaces the default."""
    assert TrainingServiceConfig(max_running=200, interactive_reserve=0).interactive_reserve == 0
    parsed = TrainingServiceConfig.model_validate({"max_running": 200, "interactive_reserve": 9})
    assert parsed.interactive_reserve == 9


def test_a_validation_error_reads_as_one_line_naming_each_field() -> None:
    """Each invalid field is named with its message, on one line."""
    with pytest.raises(ValidationError) as caught:
        worker_settings(max_jobs=0, sweep_batch=0)
    line = describe_validation_error(caught.value)
    assert "\n" not in line
    assert line.startswith("invalid WorkerSettings: ")
    assert "max_jobs: Input should be greater than or equal to 1" in line
    assert "sweep_batch: " in line
