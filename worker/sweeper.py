"""The poll sweeper: one loop per worker process polls every parked training job that is due.

A step that finds its job still running parks the run instead of enqueueing a deferred arq
job for its next poll. The sweeper claims due parked runs in batches (``Ledger.claim_polls``),
reads their status concurrently through the training backend, lets the machine decide for
each (``machine.needs_poll`` and ``machine.swept``), and records what it decided in one
pipelined round trip: the next poll and the slot's lease (``Slots.hold``, the same lease
primitive the steps use) for a running job; the slot's release, the job's duration and a
"seen finished" mark for an ended one. Runs that must act — their job ended, the poll failed,
a cancel was asked, the deadline passed, or their slot was lost with the caps full — get
their step woken with an arq job. So a poll costs a status GET and a share of three round
trips instead of an arq job and five.

Claims are leases (``sweep_claim_seconds``, longer than a sweep normally takes): a sweeper
that dies mid-batch leaves its runs to be claimed again once the claim expires, so a parked
run is never forgotten. A sweep that outlasts its claim only costs a repeated poll.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio.client import Pipeline

from worker.azureml.bes import JobState
from worker.azureml.errors import AzureMLError
from worker.classic import UnknownEndpoint
from worker.deps import Deps
from worker.metrics import METRICS
from worker.redis_full import FullRedis, is_full
from worker.run import machine as mc
from worker.run.model import Run
from worker.run.slots import Hold
from worker.schemas import utcnow
from worker.steps import policy_of

log = structlog.get_logger("retrainq.sweeper")

IDLE_PAUSE_SECONDS = 0.1
ERROR_PAUSE_SECONDS = 1.0


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
        owner: str = "-",
        full_redis: FullRedis | None = None,
    ) -> None:
        self.deps = deps
        self.full_redis = full_redis or FullRedis()
        self.dispatch = dispatch
        self.ledger = deps.ledger
        self.policy = policy_of(deps.settings)
        self.batch = batch
        self.claim_seconds = claim_seconds
        self.owner = owner
        self.gate = asyncio.Semaphore(concurrency)
        self.rng = random.Random()

    async def run_forever(self) -> None:
        """Sweep until cancelled; errors (a Redis outage) pause the loop instead of ending it."""
        while True:
            try:
                swept = await self.sweep_once()
            except Exception as exc:  # any failure pauses the loop; the claims expire
                if is_full(exc):
                    self.full_redis.refusal("sweeper")
                else:
                    log.warning("sweeper.failed", error=str(exc))
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            if swept < self.batch:
                await asyncio.sleep(IDLE_PAUSE_SECONDS)

    async def sweep_once(self) -> int:
        """Poll one batch of due parked runs; returns how many were claimed."""
        run_ids = await self.ledger.claim_polls(self.batch, self.claim_seconds, self.owner)
        if not run_ids:
            return 0
        runs = {run.id: run for run in await self.ledger.load_many(run_ids)}
        decided = await asyncio.gather(
            *(self._poll(run_id, runs.get(run_id)) for run_id in run_ids)
        )
        freed: set[str] = set()
        holds: dict[int, Run] = {}
        async with self.ledger.redis.pipeline(transaction=False) as pipe:
            for run_id, outcome in zip(run_ids, decided, strict=True):
                await self._record(pipe, run_id, runs.get(run_id), outcome, freed, holds)
            self.ledger.settle_claims(pipe, self.owner, run_ids)
            replies = await pipe.execute()
        lost = [run for at, run in holds.items() if int(replies[at]) == Hold.LOST]
        # Slots of ended jobs were given back above: hand them to waiting runs now, before
        # the ended runs' own steps evaluate and deploy.
        for service in freed:
            await self.dispatch(service)
        woken = [
            runs[run_id]
            for run_id, outcome in zip(run_ids, decided, strict=True)
            if outcome.outcome is mc.Sweep.WOKEN
        ]
        woken += [run for run in lost if run not in woken]  # its step fails it: caps full
        # The claim stays on a woken run until its step re-parks or moves it: if this enqueue
        # is lost, the run is polled and woken again when the claim expires.
        await asyncio.gather(*(self.deps.queue.advance(run.id, run.version) for run in woken))
        for outcome in decided:
            METRICS.sweeper_polls.labels(outcome.outcome.value).inc()
        return len(run_ids)

    async def _poll(self, run_id: str, run: Run | None) -> mc.Swept:
        tick = mc.Tick(now=utcnow(), draw=self.rng.random())
        early = mc.needs_poll(run, tick)
        if early is not None or run is None:
            return early or mc.Swept(mc.Sweep.GONE)
        state: JobState | None
        try:
            async with self.gate:
                state = (await self.deps.training.status(run, run.bes_job_id or "")).state
        except (AzureMLError, UnknownEndpoint) as exc:
            log.debug("sweeper.poll_failed", run_id=run_id, error=str(exc))
            state = None
        else:
            await self.deps.failpoints.hit("bes.poll", run_id)
        expected = await self.deps.estimates.expected(run.training_service, run.tenant_id)
        return mc.swept(run, state, tick, self.policy, expected)

    async def _record(
        self,
        pipe: Pipeline,
        run_id: str,
        run: Run | None,
        outcome: mc.Swept,
        freed: set[str],
        holds: dict[int, Run],
    ) -> None:
        """Queue on ``pipe`` what a poll decided (notes freed services and hold replies)."""
        if outcome.outcome is mc.Sweep.GONE or run is None:
            self.ledger.unpark(pipe, run_id)
            return
        if outcome.outcome is mc.Sweep.RUNNING:
            self.ledger.repark(pipe, run.id, outcome.poll_in)
        if outcome.hold:
            at = len(pipe.command_stack)
            endpoint = run.bes_endpoint or 0
            if await self.deps.slots.hold_in(pipe, run.training_service, run.id, endpoint):
                holds[at] = run
        if outcome.release:
            await self.deps.slots.release_in(pipe, run.training_service, run.id)
            freed.add(run.training_service)
        if outcome.finished and run.bes_job_id:
            self.ledger.mark_finished(pipe, run.id, run.bes_job_id)
        if outcome.duration is not None:
            self.deps.parked.record_duration_in(
                pipe, run.training_service, outcome.duration, run.tenant_id
            )
