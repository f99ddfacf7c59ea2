"""The poll sweeper: one loop per worker process polls every parked BES job that is due.

A step that finds its BES job still running parks the run (``worker/parking.py``) instead of
enqueueing a deferred arq job for its next poll. The sweeper claims due parked runs in
batches, reads their status concurrently, and for each one either moves its next poll on
(renewing its slot lease, in one pipelined round trip for the batch) or wakes its step with
an arq job — when the job ended, when the status call failed (the step owns retries and
throttling), or when the run was asked to cancel or passed its deadline. So a poll costs a
status GET and a share of three round trips instead of an arq job and five.

A job that ended no longer needs its BES slot: the sweeper releases it (in the same pipelined
round trip) and hands it to the next waiting run at once, before the ended run's own step
evaluates and deploys (that step releases again, which is a no-op). It also records how long
finished jobs took, which shapes the poll schedule (``worker/polling.py``).

Claims are leases (``sweep_claim_seconds``, longer than a sweep normally takes): a sweeper
that dies mid-batch leaves its runs to be claimed again once the claim expires, so a parked
run is never forgotten. A sweep that outlasts its claim only costs a repeated poll.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog
from redis.asyncio.client import Pipeline

from worker.azureml.bes import JobState
from worker.azureml.errors import AzureMLError
from worker.deps import Deps, UnknownEndpoint
from worker.metrics import METRICS
from worker.polling import poll_interval, training_age
from worker.schemas import Run, RunState, utcnow

log = structlog.get_logger("retrainq.sweeper")

IDLE_PAUSE_SECONDS = 0.1
ERROR_PAUSE_SECONDS = 1.0


class Outcome(StrEnum):
    """What a sweep decided for one parked run."""

    RUNNING = "running"  # poll again later
    WOKEN = "woken"  # its step must run now
    GONE = "gone"  # no longer a parked training run


@dataclass(frozen=True)
class Polled:
    """One parked run after its poll: the outcome and, when running, the next poll's delay."""

    run_id: str
    outcome: Outcome
    run: Run | None = None
    delay: float = 0.0
    ended: JobState | None = None


class Sweeper:
    """Polls the due parked runs of every training service, batch after batch."""

    def __init__(
        self,
        deps: Deps,
        dispatch: Callable[[str], Awaitable[object]],
        *,
        batch: int = 256,
        concurrency: int = 64,
        claim_seconds: float = 20.0,
    ) -> None:
        self.deps = deps
        self.dispatch = dispatch
        self.parked = deps.parked
        self.estimates = deps.estimates
        self.batch = batch
        self.claim_seconds = claim_seconds
        self.gate = asyncio.Semaphore(concurrency)
        self.rng = random.Random()

    async def run_forever(self) -> None:
        """Sweep until cancelled; errors (a Redis outage) pause the loop instead of ending it."""
        while True:
            try:
                swept = await self.sweep_once()
            except Exception as exc:  # any failure pauses the loop; the claims expire
                log.warning("sweeper.failed", error=str(exc))
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            if swept < self.batch:
                await asyncio.sleep(IDLE_PAUSE_SECONDS)

    async def sweep_once(self) -> int:
        """Poll one batch of due parked runs; returns how many were claimed."""
        run_ids = await self.parked.claim_polls(self.batch, self.claim_seconds)
        if not run_ids:
            return 0
        runs = {run.id: run for run in await self.deps.store.get_runs(run_ids)}
        polled = await asyncio.gather(*(self._poll(run_id, runs.get(run_id)) for run_id in run_ids))
        freed: set[str] = set()
        async with self.parked.redis.pipeline(transaction=False) as pipe:
            for item in polled:
                await self._record(pipe, item, freed)
            await pipe.execute()
        # Slots of ended jobs were given back above: hand them to waiting runs now, before
        # the ended runs' own steps evaluate and deploy.
        for service in freed:
            await self.dispatch(service)
        woken = [item.run for item in polled if item.outcome is Outcome.WOKEN and item.run]
        # The claim stays on a woken run until its step re-parks or moves it: if this enqueue
        # is lost, the run is polled and woken again when the claim expires.
        await asyncio.gather(*(self.deps.queue.advance(run.id, run.version) for run in woken))
        for item in polled:
            METRICS.sweeper_polls.labels(item.outcome.value).inc()
        return len(run_ids)

    async def _poll(self, run_id: str, run: Run | None) -> Polled:
        if run is None or run.state is not RunState.TRAINING or not run.bes_job_id:
            return Polled(run_id, Outcome.GONE)
        if run.cancel_requested or utcnow() > run.deadline_at or run.bes_finished_seen:
            # Seen Finished already: its slot and duration were handled then, and a claim
            # that outlasted the wake only needs the wake again, not another poll.
            return Polled(run_id, Outcome.WOKEN, run)
        try:
            client = self.deps.bes_client(run.training_service, run.bes_endpoint or 0)
            async with self.gate:
                status = await client.status(run.bes_job_id)
        except (AzureMLError, UnknownEndpoint) as exc:
            log.debug("sweeper.poll_failed", run_id=run_id, error=str(exc))
            return Polled(run_id, Outcome.WOKEN, run)
        await self.deps.failpoints.hit("bes.poll", run_id)
        if status.state not in (JobState.NOT_STARTED, JobState.RUNNING):
            return Polled(run_id, Outcome.WOKEN, run, ended=status.state)
        return Polled(run_id, Outcome.RUNNING, run, await self.next_poll(run))

    async def _record(self, pipe: Pipeline, item: Polled, freed: set[str]) -> None:
        """Queue on ``pipe`` what a poll decided; adds the services whose slot was freed."""
        run = item.run
        if item.outcome is Outcome.GONE or run is None:
            self.parked.unpark(pipe, item.run_id)
        elif item.outcome is Outcome.RUNNING or (item.ended is None and not run.bes_finished_seen):
            # Running, or woken with its job in an unknown state (a failed poll, a cancel, the
            # deadline): the job still holds its slot until a step has dealt with it.
            if item.outcome is Outcome.RUNNING:
                self.parked.repark(pipe, run.id, item.delay)
            endpoint = run.bes_endpoint or 0
            await self.deps.slots.renew_in(pipe, run.training_service, run.id, endpoint)
        elif item.ended is not None:
            await self.deps.slots.release_in(pipe, run.training_service, run.id)
            freed.add(run.training_service)
            if item.ended is JobState.FINISHED and run.bes_job_id:
                self.parked.mark_finished(pipe, run.id, run.bes_job_id)
                self.parked.record_duration_in(pipe, run.training_service, training_age(run))

    async def next_poll(self, run: Run) -> float:
        """Seconds until the next poll of a run whose BES job is still running."""
        settings = self.deps.settings
        return poll_interval(
            training_age(run),
            settings.poll_min_seconds,
            settings.poll_max_seconds,
            self.rng.random(),
            await self.estimates.expected(run.training_service),
        )
