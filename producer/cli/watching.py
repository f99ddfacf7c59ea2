"""Following a batch to its end: progress on stderr, polls that ride out API errors.

On a terminal the progress is a live bar; in a log or a pipe it is a plain line whenever the
counts change (and at least every ``PLAIN_EVERY_SECONDS``). A poll that fails because the API
is unreachable, overloaded or restarting is retried with backoff until ``give_up_after``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.cli import render
from producer.cli.client import ApiClient, ApiError
from producer.cli.output import Output
from producer.schemas import BatchStatus, RunBrief

FAILED_STATES = frozenset({"failed", "cancelled"})
PLAIN_EVERY_SECONDS = 30.0
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 15.0
T = TypeVar("T")


class BatchReport(BaseModel):
    """A batch's progress and its runs that failed or were cancelled, with their reasons."""

    batch: BatchStatus
    failed: list[RunBrief]


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): doubling from 0.5 s, at most 15 s."""
    return float(min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** min(attempt, 10)))


def retryable(exc: ApiError) -> bool:
    """Errors worth waiting out: unreachable (0), rate limited (429), server side (5xx)."""
    return exc.status in (0, 429) or exc.status >= 500


async def ride_out(
    call: Callable[[], Awaitable[T]],
    out: Output,
    give_up_after: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``call()``, retried with backoff through retryable API errors for ``give_up_after`` s."""
    first_failure: float | None = None
    attempt = 0
    while True:
        try:
            return await call()
        except (ApiError, TimeoutError) as exc:
            error = exc if isinstance(exc, ApiError) else ApiError(0, "timed out", "no answer")
            now = time.monotonic()
            first_failure = first_failure if first_failure is not None else now
            if not retryable(error) or now - first_failure > give_up_after:
                raise error from exc
            wait = backoff(attempt)
            attempt += 1
            out.note(f"retrainq: {error}; retrying in {wait:g}s")
            await sleep(wait)


async def failed_runs(client: ApiClient, batch_id: str) -> list[RunBrief]:
    """Every run of the batch that failed or was cancelled, in creation order."""
    failed: list[RunBrief] = []
    offset: int | None = 0
    while offset is not None:
        page = await client.batch_runs(batch_id, offset)
        failed += [run for run in page.items if run.state.value in FAILED_STATES]
        offset = page.next_offset
    return failed


def plain_line(status: BatchStatus, now: float) -> str:
    """One progress line for logs: UTC time, batch, ended/total, (once ended) the batch's
    state, counts by state and ETA."""
    summary = render.batch_summary(status) if status.state == "running" else render.bar_text(status)
    return (
        f"{time.strftime('%H:%M:%S', time.gmtime(now))}Z batch {status.id[:8]}: "
        f"{status.done}/{status.total} ended · {summary} · ETA {render.eta(status)}"
    )


async def follow(
    client: ApiClient, out: Output, batch_id: str, interval: float, give_up_after: float
) -> BatchStatus:
    """Poll the batch until every run ended, showing progress on stderr; the final status."""

    async def poll() -> BatchStatus:
        return await ride_out(lambda: client.batch(batch_id), out, give_up_after)

    status = await poll()
    if out.interactive:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=out.err) as progress:
            task = progress.add_task(
                render.bar_text(status), total=status.total, completed=status.done
            )
            while status.done < status.total:
                await asyncio.sleep(interval)
                status = await poll()
                description = render.bar_text(status)
                if status.done < status.total:
                    description += f" · ETA {render.eta(status)}"
                progress.update(
                    task, completed=status.done, total=status.total, description=description
                )
        return status
    shown, shown_at = "", 0.0
    while True:
        summary = f"{status.done}/{status.total} {render.batch_summary(status)}"
        if summary != shown or time.monotonic() - shown_at >= PLAIN_EVERY_SECONDS:
            out.note(plain_line(status, time.time()))
            shown, shown_at = summary, time.monotonic()
        if status.done >= status.total:
            return status
        await asyncio.sleep(interval)
        status = await poll()
