"""Cron expressions of recurring retrains (5 fields, UTC): validation and next fire time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from croniter import CroniterBadCronError, croniter
from pydantic import AfterValidator, Field


def validate_cron(expression: str) -> str:
    """The expression if it is a 5-field cron expression; ``ValueError`` otherwise."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"not a 5-field cron expression: {expression!r}")
    return expression


def next_fire(expression: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` that ``expression`` selects (UTC)."""
    try:
        moment = croniter(expression, after.astimezone(UTC)).get_next(datetime)
    except CroniterBadCronError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(moment, datetime):
        raise ValueError(f"cron expression {expression!r} gives no next time")
    return moment.astimezone(UTC)


CronExpression = Annotated[str, Field(max_length=120), AfterValidator(validate_cron)]
