"""``watch`` rides out API errors with backoff and gives up on the rest."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from producer.cli.client import ApiError
from producer.cli.output import Output
from producer.cli.watching import backoff, plain_line, ride_out
from producer.schemas import BatchStatus

STATUS = BatchStatus(
    id="0123456789abcdef0123456789abcdef",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    reason="bulk",
    total=10,
    done=4,
    progress=0.4,
    counts={"queued": 6, "succeeded": 4},
    throughput_per_second=None,
    eta_seconds=None,
)


def test_backoff_doubles_from_half_a_second_up_to_fifteen() -> None:
    """0.5, 1, 2, 4, 8, then 15 s at most."""
    assert [backoff(i) for i in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]


async def test_unreachable_and_5xx_are_retried_with_a_note_each() -> None:
    """Two failed polls (API down, then 503) are waited out; the third answers."""
    errors = [ApiError(0, "cannot reach the API", "x"), ApiError(503, "Service Unavailable", "y")]
    waits: list[float] = []
    stderr = io.StringIO()

    async def call() -> BatchStatus:
        if errors:
            raise errors.pop(0)
        return STATUS

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    out = Output(stderr=lambda: stderr)
    assert await ride_out(call, out, give_up_after=60, sleep=sleep) is STATUS
    assert waits == [0.5, 1.0]
    assert stderr.getvalue().splitlines() == [
        "retrainq: cannot reach the API: x; retrying in 0.5s",
        "retrainq: 503 Service Unavailable: y; retrying in 1s",
    ]


async def test_a_404_is_not_retried() -> None:
    """A client error (unknown batch) ends the watch at once."""

    async def call() -> BatchStatus:
        raise ApiError(404, "Not Found", "no batch 'x'")

    async def sleep(_seconds: float) -> None:
        raise AssertionError("no wait expected")

    with pytest.raises(ApiError, match="404"):
        await ride_out(call, Output(), give_up_after=60, sleep=sleep)


async def test_errors_longer_than_give_up_after_end_the_watch() -> None:
    """Failures for longer than ``give_up_after`` are raised (a negative bound: at once)."""
    calls = 0

    async def call() -> BatchStatus:
        nonlocal calls
        calls += 1
        raise ApiError(503, "Service Unavailable", "down")

    async def sleep(_seconds: float) -> None:
        return None

    with pytest.raises(ApiError, match="503"):
        await ride_out(call, Output(stderr=io.StringIO), give_up_after=-1, sleep=sleep)
    assert calls == 1


def test_plain_line_shows_counts_and_an_unknown_eta() -> None:
    """A log line: UTC time, batch prefix, ended/total, states, ETA."""
    line = plain_line(STATUS, datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC).timestamp())
    assert line == "12:00:05Z batch 01234567: 4/10 ended · queued 6 · succeeded 4 · ETA unknown"
