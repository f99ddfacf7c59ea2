"""Cron parsing for recurring retrains (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from worker.cron import next_fire, validate_cron
from worker.schedules import Schedule


def test_next_fire_is_strictly_after_and_in_utc() -> None:
    """A nightly 02:30 schedule fires at the next 02:30 UTC, never at the same instant."""
    at = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert next_fire("30 2 * * *", at) == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
    assert next_fire("*/15 * * * *", datetime(2026, 3, 1, 0, 7, tzinfo=UTC)) == datetime(
        2026, 3, 1, 0, 15, tzinfo=UTC
    )


@pytest.mark.parametrize("expression", ["", "* * *", "61 * * * *", "every day", "* * * * * *"])
def test_invalid_cron_expressions_are_refused(expression: str) -> None:
    """Anything but a valid 5-field expression raises ValueError."""
    with pytest.raises(ValueError, match="cron"):
        validate_cron(expression)


def test_schedule_model_validates_its_cron() -> None:
    """A schedule record with a bad expression does not validate."""
    with pytest.raises(ValidationError):
        Schedule(name="nightly", cron="not cron")
    assert Schedule(name="nightly", cron="0 3 * * *").kind == "fleet"
