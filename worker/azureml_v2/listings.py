"""Job states read in bulk: runs share a poll tag, and one listing answers all their polls.

Polling each of thousands of jobs with its own GET overruns ARM's read budget (PROTOCOL-V2
§5.2: 10,000 jobs polled every 30 s is 333 reads/s against 25 refilled). So each job carries a
poll tag naming the window its run was submitted in (``poll_group``), and a status read asks
``Listings`` for the window's listing: the jobs of one tag-filtered list call (all its pages).
A listing answers every read for ``fresh_seconds``; reads that arrive while it is being
fetched wait for that same fetch instead of starting their own (the sweeper reads a batch's
states concurrently, so one batch costs one listing per window). A job missing from a listing
fetched before its run started training was created after it: it is taken as still running
until the next listing. A job missing from a later listing (one without the tag) is read by
GET. A listing that fails fails every read that waited for it: they are polled again later.

The cost is the listing's pages: a window holds the jobs submitted in ``poll_group_minutes``,
finished ones included, so with W minutes per window, jobs of T minutes and 100 per page,
N jobs in flight take about ``(1 + W/T) * N / 100`` reads per ``fresh_seconds``.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.azureml.bes import JobState
from worker.azureml.errors import AzureMLError
from worker.azureml_v2.jobs import JobInfo
from worker.run.model import Run
from worker.schemas import RunState, utcnow

POLL_TAG = "retrainq-poll-"
# Listings older than this many freshness periods are forgotten (their window has ended).
KEEP_PERIODS = 6


def poll_group(run: Run, minutes: int) -> str:
    """The submission window of ``run``: ``YYYYMMDDHHMM`` of its start, floored to ``minutes``.

    Taken from when the run entered ``submitting`` (recorded once, so every submit of the run
    names the same window), else its creation.
    """
    began = run.phases.get(RunState.SUBMITTING.value, run.created_at).astimezone(UTC)
    minute = (began.hour * 60 + began.minute) // minutes * minutes
    floor = datetime(began.year, began.month, began.day, minute // 60, minute % 60, tzinfo=UTC)
    return floor.strftime("%Y%m%d%H%M")


def poll_tag(run: Run, minutes: int) -> str:
    """The tag key the run's job carries and its listing filters by."""
    return f"{POLL_TAG}{poll_group(run, minutes)}"


@dataclass(frozen=True)
class Listing:
    """The jobs of one tag, by name, as of ``fetched_at`` (monotonic seconds), which was
    ``fetched_wall`` on the wall clock."""

    fetched_at: float
    fetched_wall: datetime
    jobs: dict[str, JobInfo] = field(default_factory=dict)

    def state_of(self, run: Run, job_id: str) -> JobInfo | None:
        """The job as listed; a job created after the listing as not started; else ``None``
        (the caller reads it by GET)."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job
        training = run.phases.get(RunState.TRAINING.value)
        if training is not None and self.fetched_wall < training:
            return JobInfo(name=job_id, status="NotStarted", state=JobState.RUNNING)
        return None


Fetch = Callable[[], Awaitable[list[JobInfo]]]


class Listings:
    """Recent listings by key, each fetched once however many reads want it at a time."""

    def __init__(
        self,
        fresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.fresh_seconds = fresh_seconds
        self.clock = clock
        self.wall = wall
        self.entries: dict[Hashable, Listing] = {}
        self.pending: dict[Hashable, asyncio.Future[Listing | AzureMLError | None]] = {}
        self.fetches = 0

    async def get(self, key: Hashable, fetch: Fetch) -> Listing | None:
        """A fresh listing of ``key`` (fetched now, or shared). A failed fetch raises its
        ``AzureMLError`` in every read that waited for it (each polls again later: no read
        turns into a GET of its own, which after a throttled or failed listing would be a
        burst of them); ``None`` when the fetch was cut short otherwise (a cancelled read)."""
        now = self.clock()
        entry = self.entries.get(key)
        if entry is not None and now - entry.fetched_at < self.fresh_seconds:
            return entry
        waiting = self.pending.get(key)
        if waiting is not None:
            # shield: a reader cancelled while waiting must not cancel the others' fetch result
            shared = await asyncio.shield(waiting)
            if isinstance(shared, AzureMLError):
                raise copy.copy(shared)
            return shared
        future: asyncio.Future[Listing | AzureMLError | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[key] = future
        outcome: Listing | AzureMLError | None = None
        began = self.wall()
        try:
            self.fetches += 1
            jobs = await fetch()
            outcome = Listing(now, began, {job.name: job for job in jobs})
            self.entries[key] = outcome
            self._forget_old(now)
            return outcome
        except AzureMLError as exc:
            outcome = exc
            raise
        finally:
            del self.pending[key]
            future.set_result(outcome)

    def _forget_old(self, now: float) -> None:
        horizon = KEEP_PERIODS * max(self.fresh_seconds, 1.0)
        for key in [k for k, e in self.entries.items() if now - e.fetched_at > horizon]:
            del self.entries[key]
