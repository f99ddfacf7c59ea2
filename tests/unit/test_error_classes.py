"""Permanent remote errors are never retried and keep their remote code (worker/azureml)."""

from __future__ import annotations

import json

import pytest

from worker.azureml.errors import (
    PermanentError,
    TransientError,
    error_for_status,
    is_transient_status,
)
from worker.azureml.retry import RetryPolicy, with_retries

URL = "http://127.0.0.1:9/workspaces/w/services/s/jobs?api-version=2.0"
CLIENT_ERRORS = [s for s in range(400, 500) if s not in (408, 429)]
UNEXPECTED = json.dumps(
    {
        "error": {
            "code": "BadArgument",
            "message": "Invalid argument provided.",
            "details": [{"code": "UnexpectedParameter", "message": "Unexpected 'Alpha'."}],
        }
    }
).encode()


@pytest.mark.parametrize("status", CLIENT_ERRORS)
async def test_every_4xx_but_408_and_429_is_permanent_and_tried_once(status: int) -> None:
    """One try, however generous the policy; the error keeps status and remote code."""
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise error_for_status(status, UNEXPECTED, method="POST", url=URL)

    async def no_sleep(_seconds: float) -> None:
        raise AssertionError("a permanent error was retried")

    with pytest.raises(PermanentError) as caught:
        await with_retries(call, RetryPolicy(attempts=10), idempotent=True, sleep=no_sleep)
    assert calls == 1
    assert caught.value.status == status
    assert caught.value.remote_code == "UnexpectedParameter"


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (408, True),
        (429, True),
        (500, True),
        (501, False),
        (505, False),
        (507, True),
        (520, True),
        (599, True),
        (600, False),
        (302, False),
    ],
)
def test_which_statuses_are_worth_repeating(status: int, transient: bool) -> None:
    """408, 429 and 5xx (but 501/505) are transient; the error class agrees."""
    assert is_transient_status(status) is transient
    error = error_for_status(status, b"", method="GET", url=URL)
    assert isinstance(error, TransientError) is transient


def test_an_answer_without_an_error_body_still_names_a_code() -> None:
    """A bare 4xx gives ``http_<status>`` as its remote code (a failed run's error_code)."""
    assert error_for_status(410, b"", method="GET", url=URL).remote_code == "http_410"
    assert error_for_status(400, b"<html>", method="GET", url=URL).remote_code == "http_400"
