"""The run state machine: ``advance(run_id)`` does the next bounded piece of work of a run.

Each handler reads nothing but the run (and the tenant), does at most a few short remote
calls, writes the outcome with a compare-and-set on the run's version, and says when the next
step is due. Zero delay continues inline (within a time budget); a positive delay re-enqueues
the run deferred; ``None`` means the run waits for a BES slot or has ended.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta

import structlog

from worker.azureml.bes import BesJobRequest, JobState
from worker.azureml.errors import (
    AzureMLError,
    CannotStartJobError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from worker.azureml.locations import BlobLocation, BlobReference
from worker.blobs import BlobStoreError
from worker.deploy import Deployer
from worker.deps import Deps, UnknownEndpoint
from worker.errors import RunFailed
from worker.evaluate import EvaluationError, Gate, decide, parse_evaluation_csv
from worker.logs import bind_context, clear_context
from worker.metrics import METRICS
from worker.polling import poll_interval, training_age
from worker.schemas import Run, RunState, utcnow
from worker.settings import TrainingServiceConfig
from worker.store import RunRequest, StaleRecord

log = structlog.get_logger("retrainq.steps")

WAIT = None  # a handler's "no step pending" (waiting for a slot, or terminal)


@dataclass(frozen=True)
class Next:
    """What a handler did: the run as saved, and when its next step is due (s), if any."""

    run: Run
    delay: float | None


def failure_backoff(failures: int, rng: random.Random, cap: float = 60.0) -> float:
    """Seconds before retrying a step that failed transiently ``failures`` times."""
    ceiling = min(cap, 2.0 ** min(failures - 1, 10))
    return ceiling / 2 + rng.random() * ceiling / 2


class Stepper:
    """Advances runs; one instance per worker process."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.deployer = Deployer(deps)
        self.rng = random.Random()

    # --- the loop --------------------------------------------------------------------------

    async def advance(self, run_id: str) -> None:
        """Advance one run as far as its next wait (or the step budget) allows."""
        clear_context()
        budget_end = time.monotonic() + self.settings.job_timeout_seconds / 2
        run = await self.deps.store.get_run(run_id)
        if run is not None and run.state.terminal and await self.deps.store.is_due(run.id):
            # Ended, but its tail work (slot, follow-up run) was cut short by a crash.
            self._bind(run)
            await self._finished(run)
            return
        while run is not None and not run.state.terminal:
            self._bind(run)
            try:
                outcome = await self._step(run)
            except StaleRecord:
                log.info("run.stale_step", reason="the run moved on under another step")
                return
            if outcome.run.state.terminal:
                await self._finished(outcome.run)
                return
            if outcome.delay is None:
                return
            if outcome.delay > 0 or time.monotonic() > budget_end:
                await self.deps.queue.advance(run.id, outcome.run.version, outcome.delay)
                return
            run = outcome.run

    def _bind(self, run: Run) -> None:
        bind_context(
            tenant_id=run.tenant_id,
            run_id=run.id,
            batch_id=run.batch_id,
            state=run.state.value,
            bes_job_id=run.bes_job_id,
        )

    async def _step(self, run: Run) -> Next:
        try:
            if run.cancel_requested:
                return await self._cancel(run)
            if utcnow() > run.deadline_at:
                raise RunFailed("the run passed its deadline", "deadline_exceeded")
            return await self._dispatch_state(run)
        except RunFailed as exc:
            return await self._fail(run, exc.reason, exc.code)
        except UnknownEndpoint as exc:  # the run's endpoint or service left the configuration
            return await self._fail(run, str(exc), "config")
        except ThrottledError as exc:
            await self.deps.slots.throttle(
                run.training_service, exc.retry_after or self.settings.throttle_pause_seconds
            )
            return await self._retry_later(run, exc)
        except TransientError as exc:
            return await self._retry_later(run, exc)
        except BlobStoreError as exc:
            if exc.transient:
                return await self._retry_later(run, exc)
            return await self._fail(run, str(exc), "blob_storage")
        except PermanentError as exc:
            return await self._fail(
                run,
                str(exc.bind(tenant_id=run.tenant_id, run_id=run.id)),
                exc.remote_code or "remote_error",
            )

    async def _dispatch_state(self, run: Run) -> Next:
        handlers = {
            RunState.QUEUED: self._queued,
            RunState.WAITING_SLOT: self._waiting,
            RunState.SUBMITTING: self._submitting,
            RunState.TRAINING: self._training,
            RunState.EVALUATING: self._evaluating,
            RunState.DEPLOYING: self._deploying,
        }
        return await handlers[run.state](run)

    async def _save(
        self,
        run: Run,
        state: RunState,
        delay: float | None,
        *,
        polls: int = 0,
        **changes: object,
    ) -> Next:
        if state != run.state:
            changes.setdefault("step_failures", 0)
        updated = run.model_copy(update=changes)
        # A step continuing inline (or an ended run whose tail work follows) is overdue only if
        # it has not moved on within a step's timeout.
        due_in: float | None = delay
        if delay == 0 or (delay is None and state.terminal):
            due_in = self.settings.job_timeout_seconds
        saved = await self.deps.store.save_run(updated, state, due_in=due_in, polls=polls)
        if state != run.state:
            self._observe_phase(run, saved)
            if not state.terminal:  # terminal states are logged once, with totals, on finish
                log.info(f"run.{state.value}", previous=run.state.value)
        return Next(saved, delay)

    async def _park(self, run: Run, delay: float, *, polls: int = 0, **changes: object) -> Next:
        """Save a training run and leave its next poll, ``delay`` s away, to the sweeper.

        Without the sweeper (``poll_sweeper`` off, or a ``--burst`` worker, which must see
        its pending polls on the arq queue) the next poll is a deferred arq job instead.
        """
        if not self.settings.poll_sweeper:
            return await self._save(run, RunState.TRAINING, delay, polls=polls, **changes)
        if run.state is not RunState.TRAINING:
            changes.setdefault("step_failures", 0)
        updated = run.model_copy(update=changes)
        saved = await self.deps.store.save_run(
            updated, RunState.TRAINING, due_in=None, park_in=delay, polls=polls
        )
        if run.state is not RunState.TRAINING:
            self._observe_phase(run, saved)
            log.info("run.training", previous=run.state.value)
        return Next(saved, WAIT)

    @staticmethod
    def _observe_phase(before: Run, after: Run) -> None:
        entered = before.phases.get(before.state.value)
        if entered is not None:
            elapsed = (after.updated_at - entered).total_seconds()
            METRICS.phase_seconds.labels(before.state.value).observe(max(0.0, elapsed))

    async def _retry_later(self, run: Run, exc: Exception) -> Next:
        failures = run.step_failures + 1
        if failures > self.settings.step_max_failures:
            return await self._fail(
                run, f"gave up after {failures - 1} transient failures: {exc}", "retries_exhausted"
            )
        delay = failure_backoff(failures, self.rng)
        if isinstance(exc, ThrottledError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        log.warning("run.step_retry", error=str(exc), failures=failures, delay=round(delay, 2))
        return await self._save(run, run.state, delay, step_failures=failures)

    async def _fail(self, run: Run, reason: str, code: str | None) -> Next:
        if run.bes_job_id and run.state in (RunState.SUBMITTING, RunState.TRAINING):
            await self._delete_job(run)
        log.warning("run.failing", reason=reason, code=code)
        return await self._save(run, RunState.FAILED, WAIT, error=reason, error_code=code)

    async def _cancel(self, run: Run) -> Next:
        if run.bes_job_id and run.state in (RunState.SUBMITTING, RunState.TRAINING):
            await self._delete_job(run)
        return await self._save(run, RunState.CANCELLED, WAIT, error="cancelled on request")

    async def _delete_job(self, run: Run) -> None:
        try:
            client = self.deps.bes_client(run.training_service, run.bes_endpoint or 0)
            await client.delete(run.bes_job_id or "")
            log.info("bes.deleted")
        except (AzureMLError, UnknownEndpoint) as exc:
            log.warning("bes.delete_failed", error=str(exc))

    # --- states ----------------------------------------------------------------------------

    async def _queued(self, run: Run) -> Next:
        if run.rollback_to is not None:
            changes = await self.deployer.rollback_changes(run)
            return await self._save(run, RunState.DEPLOYING, 0, **changes)
        if run.training_service not in self.settings.training_services:
            raise RunFailed(f"unknown training service {run.training_service!r}", "config")
        if run.data_path is None and self._service(run).data_parameter is None:
            raise RunFailed("the tenant has no training data yet; upload it first", "no_data")
        waiting = self.deps.slots.waiting_key(run.training_service, run.lane)
        updated = run.model_copy(update={"step_failures": 0})
        saved = await self.deps.store.save_run(
            updated, RunState.WAITING_SLOT, due_in=None, waiting_key=waiting
        )
        log.info("run.waiting_slot", lane=run.lane.value)
        # When a slot is free the run gets it here; it goes on to submit in this same step
        # instead of queueing a second one behind every other first step of its batch.
        granted = await self.dispatch(run.training_service, keep=run.id)
        return Next(saved, 0 if run.id in granted else WAIT)

    async def _waiting(self, run: Run) -> Next:
        endpoint = await self.deps.slots.held_endpoint(run.training_service, run.id)
        if endpoint is None:
            # Not granted yet: make sure it waits (idempotent) and let the dispatcher decide.
            # A grant to this very run continues here: a step enqueued for it now would share
            # this running step's arq job id and be dropped.
            await self.deps.slots.ensure_waiting(run.training_service, run.lane, run.id)
            await self.deps.store.not_due(run.id)
            if run.id not in await self.dispatch(run.training_service, keep=run.id):
                return Next(run, WAIT)
            endpoint = await self.deps.slots.held_endpoint(run.training_service, run.id)
            if endpoint is None:
                return Next(run, WAIT)
        return await self._save(run, RunState.SUBMITTING, 0, bes_endpoint=endpoint)

    def _service(self, run: Run) -> TrainingServiceConfig:
        return self.settings.training_services[run.training_service]

    async def _submitting(self, run: Run) -> Next:
        client = self.deps.bes_client(run.training_service, run.bes_endpoint or 0)
        if run.bes_job_id is None:
            orphans = run.orphaned_submissions + (1 if run.submit_attempts else 0)
            if run.submit_attempts:
                # Intent without an id: that submission (if it happened) was never started.
                log.warning("bes.orphan_assumed", attempts=run.submit_attempts)
            run = (
                await self._save(
                    run,
                    run.state,
                    0,
                    submit_attempts=run.submit_attempts + 1,
                    orphaned_submissions=orphans,
                )
            ).run
            job_id = await client.submit(self._job_request(run))
            await self.deps.failpoints.hit("bes.after_submit", run.id)
            run = (await self._save(run, run.state, 0, bes_job_id=job_id)).run
            self._bind(run)
            log.info("bes.submitted", endpoint=run.bes_endpoint)
        await self.deps.failpoints.hit("bes.after_record", run.id)
        try:
            await client.start(run.bes_job_id or "")
        except CannotStartJobError:
            status = await client.status(run.bes_job_id or "")
            if status.state is JobState.NOT_STARTED:
                raise
            log.info("bes.already_started", status=status.state.value)
        await self.deps.failpoints.hit("bes.after_start", run.id)
        log.info("bes.started")
        METRICS.bes_started.labels(run.training_service).inc()
        return await self._park(run, self.settings.poll_min_seconds, bes_started=True)

    def _job_request(self, run: Run) -> BesJobRequest:
        service = self._service(run)
        outputs = {
            service.model_output: self.deps.blobs.reference(run.outputs.model_path),
            service.evaluation_output: self.deps.blobs.reference(run.outputs.evaluation_path),
        }
        tenant_parameters = dict(run.global_parameters)
        inputs = None
        if run.data_path is not None:
            if service.data_parameter:
                location = self._read_location(run.data_path)
                tenant_parameters[service.data_parameter] = location.url.get_secret_value()
            else:
                location = self._read_location(run.data_path)
                inputs = {
                    service.input_name: BlobReference(
                        base_location=location.base_location,
                        sas_blob_token=location.sas_blob_token,
                        relative_location=location.relative_location,
                    )
                }
        return BesJobRequest(
            inputs=inputs, outputs=outputs, global_parameters=tenant_parameters or None
        )

    def _read_location(self, path: str) -> BlobLocation:
        return self.deps.blobs.read_sas(path, timedelta(seconds=self.settings.blob.sas_ttl_seconds))

    async def _training(self, run: Run) -> Next:
        age = training_age(run)
        if run.bes_finished_seen:
            # The sweeper saw this job Finished (a final state) and woke the run.
            log.info("bes.finished", polls=run.polls, seconds=round(age, 3))
            return await self._save(run, RunState.EVALUATING, 0)
        client = self.deps.bes_client(run.training_service, run.bes_endpoint or 0)
        # The job runs, so it holds a slot: renewed before the poll, which may fail for a
        # while; taken back if the lease ran out meanwhile and the slot went to another run.
        if await self.deps.slots.hold(run.training_service, run.id, run.bes_endpoint or 0):
            log.warning("slot.retaken", endpoint=run.bes_endpoint or 0)
        status = await client.status(run.bes_job_id or "")
        await self.deps.failpoints.hit("bes.poll", run.id)
        if status.state in (JobState.NOT_STARTED, JobState.RUNNING):
            delay = poll_interval(
                age,
                self.settings.poll_min_seconds,
                self.settings.poll_max_seconds,
                self.rng.random(),
                await self.deps.estimates.expected(run.training_service),
            )
            return await self._park(run, delay, polls=1)
        if status.state is JobState.FINISHED:
            log.info("bes.finished", polls=run.polls + 1, seconds=round(age, 3))
            if not self.settings.poll_sweeper:  # else the sweeper saw it first and recorded it
                await self.deps.parked.record_duration(run.training_service, age)
            return await self._save(run, RunState.EVALUATING, 0, polls=1)
        detail = status.details or "no details given"
        raise RunFailed(f"BES job {status.state.value}: {detail}", f"bes_{status.state.value}")

    async def _evaluating(self, run: Run) -> Next:
        await self._release(run)
        data = await self.deps.blobs.download(run.outputs.evaluation_path, max_bytes=1 << 20)
        try:
            metrics = parse_evaluation_csv(data.decode("utf-8", errors="replace"))
        except EvaluationError as exc:
            raise RunFailed(f"evaluation CSV unreadable: {exc}", "bad_evaluation") from exc
        tenant = await self.deps.store.get_tenant(run.tenant_id)
        if tenant is None:
            raise RunFailed("the tenant was deleted", "tenant_deleted")
        baseline = tenant.deployed.metrics if tenant.deployed else None
        decision = decide(tenant.gate or Gate(), metrics, baseline)
        log.info("gate.decided", accepted=decision.accepted, reason=decision.reason)
        await self.deps.failpoints.hit("evaluate.after_read", run.id)
        if not decision.accepted:
            return await self._save(
                run, RunState.REJECTED, WAIT, metrics=metrics, decision=decision
            )
        return await self._save(run, RunState.DEPLOYING, 0, metrics=metrics, decision=decision)

    async def _deploying(self, run: Run) -> Next:
        result = await self.deployer.step(run)
        if result.done:
            return await self._save(
                run, RunState.SUCCEEDED, WAIT, deployed=result.deployed, error=result.note
            )
        return await self._save(run, run.state, result.delay, **result.changes)

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
        if service not in self.settings.training_services:
            return []
        grants = await self.deps.slots.dispatch(service)
        for grant in grants:
            if grant.run_id == keep:
                continue
            version = await self.deps.store.run_version(grant.run_id)
            if version is not None:
                await self.deps.queue.advance(grant.run_id, version)
        return [grant.run_id for grant in grants]

    async def _finished(self, run: Run) -> None:
        """Tail work of an ended run; safe to repeat (the reconciler re-runs it after a crash)."""
        if RunState.DEPLOYING.value not in run.phases:
            # A run that reached deploying gave its slot back before (or never had one).
            await self._release(run)
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
        await self.deps.store.not_due(run.id)
