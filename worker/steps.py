"""The arq step of a run: load it, call the ports its state needs, decide, record, schedule.

``Stepper.advance(run_id)`` is a thin loop around the pure machine (``worker/run/machine.py``):
``plan`` says what the run needs, the ports (training backend, deploy target, slots, blobs)
do it, ``decide`` turns what they saw into transitions and what comes next, and the ledger
records them under a compare-and-set. Steps that may follow at once run inline within a time
budget; later ones are deferred arq jobs, polls of running jobs go to the sweeper, and a run
waiting for a slot has no step until one is granted.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import structlog

from worker.azureml.errors import AzureMLError
from worker.classic import UnknownEndpoint
from worker.deps import Deps
from worker.logs import bind_context, clear_context
from worker.metrics import METRICS
from worker.run import machine as mc
from worker.run.failures import HANDLED, failure_of
from worker.run.ledger import Placement, StaleRun
from worker.run.model import Run, RunState
from worker.run.slots import Hold
from worker.schemas import utcnow
from worker.scoring_steps import GateSteps
from worker.settings import WorkerSettings
from worker.store import RunRequest

log = structlog.get_logger("retrainq.steps")


def policy_of(settings: WorkerSettings) -> mc.Policy:
    """The machine's policy from the worker's settings."""
    return mc.Policy(
        services={
            name: mc.ServiceFacts(
                has_data_parameter=service.data_parameter is not None,
                data_parameter=service.data_parameter,
                splits=service.backend == "classic",
                label_column=service.label_column,
            )
            for name, service in settings.training_services.items()
        },
        shared_data_prefixes=tuple(settings.shared_data_prefixes),
        step_max_failures=settings.step_max_failures,
        poll_min_seconds=settings.poll_min_seconds,
        poll_max_seconds=settings.poll_max_seconds,
        throttle_pause_seconds=settings.throttle_pause_seconds,
        poll_sweeper=settings.poll_sweeper,
        deploy_poll_seconds=settings.poll_min_seconds,
        scoring_poll_seconds=settings.scoring.poll_seconds,
        scoring_slot_wait_seconds=settings.scoring.slot_wait_seconds,
        staging_settle_seconds=settings.scoring.staging_settle_seconds,
    )


def placement_of(step: mc.Step, guard_seconds: float) -> Placement:
    """Where the ledger puts a run after ``step``.

    A step continuing inline (or an ended run whose tail work follows) is due only
    ``guard_seconds`` (a step's timeout) from now: overdue if it did not move on by then.
    """
    if step.next is mc.Next.DEFER:
        return Placement(due_in=step.delay)
    if step.next is mc.Next.PARK:
        return Placement(park_in=step.delay)
    if step.next is mc.Next.WAIT_SLOT:
        return Placement(waiting=True)
    return Placement(due_in=guard_seconds)


@dataclass(frozen=True)
class Moved:
    """A run after one step, and what comes next."""

    run: Run
    next: mc.Next
    delay: float = 0.0


class Stepper:
    """Advances runs; one instance per worker process."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.ledger = deps.ledger
        self.policy = policy_of(deps.settings)
        self.gate = GateSteps(deps, dict(self.policy.services))
        self.rng = random.Random()

    def _tick(self) -> mc.Tick:
        return mc.Tick(now=utcnow(), draw=self.rng.random())

    # --- the loop --------------------------------------------------------------------------

    async def advance(self, run_id: str) -> None:
        """Advance one run as far as its next wait (or the step budget) allows."""
        clear_context()
        budget_end = time.monotonic() + self.settings.job_timeout_seconds / 2
        run = await self.ledger.load(run_id)
        if run is not None and run.state.terminal and await self.ledger.is_due(run.id):
            # Ended, but its tail work (slot, follow-up run) was cut short by a crash.
            self._bind(run)
            await self._finished(run)
            return
        while run is not None and not run.state.terminal:
            self._bind(run)
            try:
                moved = await self._step(run)
            except StaleRun:
                log.info("run.stale_step", reason="the run moved on under another step")
                return
            run = moved.run
            if moved.next is mc.Next.END:
                await self._finished(run)
                return
            if moved.next is mc.Next.WAIT_SLOT:
                # When a slot is free the run gets it here and goes on in this same step.
                if run.id not in await self.dispatch(run.training_service, keep=run.id):
                    return
            elif moved.next is mc.Next.DEFER or (
                moved.next is mc.Next.CONTINUE and time.monotonic() > budget_end
            ):
                await self.deps.queue.advance(run.id, run.version, moved.delay)
                return
            elif moved.next is not mc.Next.CONTINUE:  # parked with the sweeper, or idle
                return

    def _bind(self, run: Run) -> None:
        bind_context(
            tenant_id=run.tenant_id,
            run_id=run.id,
            batch_id=run.batch_id,
            state=run.state.value,
            bes_job_id=run.bes_job_id,
        )

    async def _step(self, run: Run) -> Moved:
        action = mc.plan(run, self._tick(), self.policy)
        intent = action.intent if isinstance(action, mc.SubmitJob | mc.SubmitScoring) else None
        if (
            isinstance(action, mc.SubmitJob)
            and action.intent.orphaned_submissions > run.orphaned_submissions
        ):
            log.warning("bes.orphan_assumed", attempts=run.submit_attempts)
        if intent is not None:
            # The intent is recorded before the call: a crash after it is seen next time.
            run = (await self._commit(run, mc.Step((intent,), mc.Next.CONTINUE))).run
        if isinstance(action, mc.StartJob):
            await self.deps.failpoints.hit("bes.after_record", run.id)
        try:
            seen = await self._perform(run, action)
        except HANDLED as exc:
            seen = failure_of(exc, tenant_id=run.tenant_id, run_id=run.id)
        if action.failpoint is not None and not isinstance(seen, mc.Failure):
            await self.deps.failpoints.hit(action.failpoint, run.id)
        return await self._commit(run, mc.decide(run, action, seen, self._tick(), self.policy))

    async def _commit(self, run: Run, step: mc.Step) -> Moved:
        """Apply the effects of ``step`` and record its transitions."""
        if step.throttle_seconds is not None:
            await self.deps.slots.throttle(run.training_service, step.throttle_seconds)
        if step.record_duration is not None:
            await self.deps.parked.record_duration(
                run.training_service, step.record_duration, run.tenant_id
            )
        if step.notes.get("slot_retaken"):
            log.warning("slot.retaken", endpoint=run.bes_endpoint or 0)
        if not step.transitions:
            return Moved(run, step.next)
        saved = await self.ledger.apply(
            run,
            step.transitions,
            utcnow(),
            placement_of(step, self.settings.job_timeout_seconds),
            polls=step.polls,
        )
        self._logged(run, saved, step)
        return Moved(saved, step.next, step.delay)

    def _logged(self, before: Run, after: Run, step: mc.Step) -> None:
        if after.bes_job_id and not before.bes_job_id:
            bind_context(bes_job_id=after.bes_job_id)
            log.info("bes.submitted", endpoint=after.bes_endpoint)
        if after.decision is not None and before.decision is None:
            log.info("gate.decided", accepted=after.decision.accepted, reason=after.decision.reason)
        if after.last_error and after.step_failures > before.step_failures:
            log.warning(
                "run.step_retry",
                error=after.last_error,
                failures=after.step_failures,
                delay=round(step.delay, 2),
            )
        if after.state is before.state:
            return
        observe_phase(before, after)
        if after.state is RunState.FAILED:
            log.warning("run.failing", reason=after.error, code=after.error_code)
        elif not after.state.terminal:  # terminal states are logged once, with totals
            log.info(f"run.{after.state.value}", previous=before.state.value)

    # --- the ports -------------------------------------------------------------------------

    async def _perform(self, run: Run, action: mc.Action) -> mc.Observation:
        """Do what ``action`` asks through the ports; return what was seen."""
        deps = self.deps
        if isinstance(action, mc.EndRun):
            if action.scoring is not None:
                await self.gate.end(run, action.scoring)
            return await self._end(run, action)
        gated = await self.gate.perform(run, action)
        if gated is not None:
            return gated
        if isinstance(action, mc.LoadRollbackSource):
            return mc.RollbackSource(await self.ledger.load(action.source_run_id))
        if isinstance(action, mc.AskSlot):
            return mc.SlotAnswer(await self._slot(run))
        if isinstance(action, mc.SubmitJob):
            return mc.Submitted(await deps.training.submit(run))
        if isinstance(action, mc.StartJob):
            await deps.training.start(run, action.job_id)
            log.info("bes.started")
            METRICS.bes_started.labels(run.training_service).inc()
            return mc.Done()
        if isinstance(action, mc.PollJob):
            return await self._poll(run, action.job_id)
        if isinstance(action, mc.Evaluate):
            return await self._evaluation(run)
        if isinstance(action, mc.Deploy):
            return await deps.deployer.deploy(run)
        if isinstance(action, mc.Proceed):
            log.info("bes.finished", polls=run.polls)
        return mc.Done()

    async def _end(self, run: Run, action: mc.EndRun) -> mc.Observation:
        if action.job_id is None:
            return mc.Done()
        try:
            await self.deps.training.cancel(run, action.job_id)
        except (AzureMLError, UnknownEndpoint) as exc:
            log.warning("bes.delete_failed", error=str(exc))
            return mc.JobDeleted(deleted=False)
        log.info("bes.deleted")
        return mc.JobDeleted(deleted=True)

    async def _slot(self, run: Run) -> int | None:
        slots = self.deps.slots
        endpoint = await slots.held_endpoint(run.training_service, run.id)
        if endpoint is not None:
            return endpoint
        # Not granted yet: make sure it waits (idempotent) and let the dispatcher decide. A
        # grant to this very run continues here: a step enqueued for it now would share this
        # running step's arq job id and be dropped.
        await self.ledger.ensure_waiting(run.training_service, run.lane, run.id, run.tenant_id)
        if run.id not in await self.dispatch(run.training_service, keep=run.id):
            return None
        return await slots.held_endpoint(run.training_service, run.id)

    async def _poll(self, run: Run, job_id: str) -> mc.Observation:
        # The job runs, so it holds a slot: kept before the poll, which may fail for a while.
        held = await self.deps.slots.hold(run.training_service, run.id, run.bes_endpoint or 0)
        if held is Hold.LOST:
            reason = "the job's slot lease ran out and the caps are full: the job is cancelled"
            return mc.Failure(mc.FailureKind.PERMANENT, reason, "slot_lost")
        report = await self.deps.training.status(run, job_id)
        expected = await self.deps.estimates.expected(run.training_service, run.tenant_id)
        if report.state.terminal:
            log.info("bes.finished", polls=run.polls + 1, state=report.state.value)
        return mc.JobStatusSeen(
            report.state, report.details, expected, slot_retaken=held is Hold.RETAKEN
        )

    async def _evaluation(self, run: Run) -> mc.Observation:
        await self._release(run)
        text = await self.deps.training.evaluation(run)
        tenant = await self.deps.store.get_tenant(run.tenant_id)
        if tenant is None:
            return mc.Evaluation(text, None, None, tenant_exists=False)
        baseline = tenant.deployed.metrics if tenant.deployed else None
        return mc.Evaluation(text, tenant.gate, baseline)

    # --- slots and endings -----------------------------------------------------------------

    async def _release(self, run: Run) -> None:
        # A slot the sweeper already handed over needs no second dispatch (the periodic
        # dispatcher fills any slot a crash left between release and hand-over).
        if await self.deps.slots.release(run.training_service, run.id):
            await self.dispatch(run.training_service)

    async def dispatch(self, service: str, *, keep: str | None = None) -> list[str]:
        """Hand free slots of ``service`` to waiting runs and enqueue their next step.

        Returns the ids of the runs granted a slot. A grant to ``keep`` (the run the caller
        is stepping) is not enqueued: the caller continues that run itself.
        """
        grants = await self.deps.slots.dispatch(service)
        await asyncio.gather(
            *(
                self.deps.queue.advance(grant.run_id, grant.version)
                for grant in grants
                if grant.run_id != keep and grant.version is not None
            )
        )
        return [grant.run_id for grant in grants]

    async def _finished(self, run: Run) -> None:
        """Tail work of an ended run; safe to repeat (the reconciler re-runs it after a crash)."""
        if RunState.DEPLOYING.value not in run.phases:
            # A run that reached deploying gave its slot back before (or never had one).
            await self._release(run)
        await self.gate.release(run)
        METRICS.runs.labels(run.state.value).inc()
        elapsed = (run.updated_at - run.created_at).total_seconds()
        METRICS.run_seconds.labels(run.state.value).observe(elapsed)
        log.info(f"run.{run.state.value}", seconds=round(elapsed, 3), error=run.error)
        if run.rerun_requested and run.state is not RunState.CANCELLED:
            request = RunRequest(tenant_id=run.tenant_id, lane=run.lane, reason="rerun")
            created = await self.deps.store.create_followup(run.id, request)
            if created.created:
                await self.deps.queue.advance(created.run_id, 0)
                log.info("run.rerun_enqueued", next_run_id=created.run_id)
        await self.ledger.not_due(run.id)


def observe_phase(before: Run, after: Run) -> None:
    """Record how long ``before`` spent in the state ``after`` left."""
    entered = before.phases.get(before.state.value)
    if entered is not None:
        elapsed = (after.updated_at - entered).total_seconds()
        METRICS.phase_seconds.labels(before.state.value).observe(max(0.0, elapsed))
