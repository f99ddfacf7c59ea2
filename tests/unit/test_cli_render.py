"""How ``retrainq runs show`` words a run that is retrying, and ETAs."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from producer.api.examples import BATCH, RUN
from producer.cli.render import eta, show_run
from producer.schemas import BatchStatus
from worker.schemas import Run


def shown(run: Run) -> str:
    """``show_run`` as plain text."""
    buffer = io.StringIO()
    show_run(Console(file=buffer, width=200), run)
    return buffer.getvalue()


def test_a_retrying_run_shows_its_last_error_failures_and_next_try() -> None:
    """While a run retries, its last transient error, failure count and next try are shown."""
    run = Run.model_validate(
        RUN
        | {
            "state": "submitting",
            "last_error": "BES answered 429 Too Many Requests",
            "step_failures": 2,
            "next_attempt_at": datetime(2026, 12, 4, 9, 1, tzinfo=UTC),
        }
    )
    text = shown(run)
    assert (
        "retrying          BES answered 429 Too Many Requests (failures 2, next try "
        "2026-12-04 09:01:00Z)"
    ) in text


def test_an_ended_run_shows_no_retry_line() -> None:
    """A run that ended says nothing about retries, whatever its last error was."""
    run = Run.model_validate(RUN | {"last_error": "a 503 long ago", "step_failures": 1})
    assert "retrying" not in shown(run)


def test_eta_is_unknown_until_the_api_knows_it() -> None:
    """No ETA from the API reads 'unknown'; seconds read as minutes past a minute."""
    status = BatchStatus.model_validate(BATCH)
    assert eta(status) == "38s"
    assert eta(status.model_copy(update={"eta_seconds": None})) == "unknown"
    assert eta(status.model_copy(update={"eta_seconds": 125.0})) == "2m05s"
