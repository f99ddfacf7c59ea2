"""Cron expressions of recurring retrains (5 fields, UTC): validation and next fire time."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from pydantic import AfterValidator, Field

MINUTES_PER_DAY = 24 * 60
# Where "does it ever fire" is asked from: any fixed instant works, a leap year's eve included.
_PROBE = datetime(2027, 12, 31, tzinfo=UTC)


def validate_cron(expression: str) -> str:
    """The expression if it is a 5-field cron expression that fires; ``ValueError`` otherwise."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"not a 5-field cron expression: {expression!r}")
    try:
        croniter(expression, _PROBE).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {expression!r} never fires (no such date)") from None
    return expression


def next_fire(expression: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` that ``expression`` selects (UTC)."""
    try:
        moment = croniter(expression, after.astimezone(UTC)).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(moment, datetime):
        raise ValueError(f"cron expression {expression!r} gives no next time")
    return moment.astimezone(UTC)


def _values(field: Sequence[int | str], low: int, high: int) -> list[int]:
    if "*" in field:
        return list(range(low, high + 1))
    return sorted(int(v) for v in field)


def shortest_gap_seconds(expression: str) -> int:
    """The shortest time between two fires of ``expression``, in seconds.

    Within a day the gaps follow from the minute and hour fields alone; across midnight the
    gap from a day's last fire to the next day's first one counts too (taken as if any two
    consecutive days could both fire, which errs towards the shorter gap).
    """
    minutes, hours = croniter(expression).expanded[:2]
    times = [h * 60 + m for h in _values(hours, 0, 23) for m in _values(minutes, 0, 59)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    gaps.append(MINUTES_PER_DAY - times[-1] + times[0])
    return 60 * min(gaps)


def check_interval(expression: str, minimum_seconds: int) -> None:
    """``ValueError`` when ``expression`` may fire twice within ``minimum_seconds``."""
    gap = shortest_gap_seconds(expression)
    if gap < minimum_seconds:
        raise ValueError(
            f"cron expression {expression!r} fires every {gap // 60} min at its most frequent; "
            f"schedules may fire at most every {minimum_seconds // 60} min"
        )


CronExpression = Annotated[str, Field(max_length=120), AfterValidator(validate_cron)]
