"""The run state machine as pure functions: what a run needs next, and what follows from it.

``plan(run, now, policy)`` says what a run needs from the outside world in its state (an
``Action``: submit its job, poll it, read its evaluation, ...). The step loop performs it
through the ports and reports what it saw (an ``Observation``); ``decide(run, action,
observation, now, policy)`` turns that into a ``Step``: the transitions to record and what
comes next (continue, defer, park, wait for a slot, end, or nothing). No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from worker.azureml.bes import JobState
from worker.datapaths import DataPathError, check_data_path, check_global_parameters
from worker.evaluate import Decision, EvaluationError, Gate, parse_evaluation_csv
from worker.evaluate import decide as gate_decision
from worker.polling import training_age
from worker.run import gating
from worker.run import model as m
from worker.run.actions import (
    Action,
    AskSlot,
    Deploy,
    DeployProgress,
    Done,
    EndRun,
    EnterWaiting,
    Evaluate,
    Evaluation,
    Failure,
    FailureKind,
    JobDeleted,
    JobStatusSeen,
    LoadRollbackSource,
    Measure,
    Measured,
    Next,
    Observation,
    Policy,
    PollJob,
    PollScoring,
    Proceed,
    RollbackSource,
    ServiceFacts,
    SlotAnswer,
    SplitData,
    SplitSeen,
    Stage,
    StagedSeen,
    StartJob,
    StartScoring,
    Step,
    SubmitJob,
    SubmitScoring,
    Submitted,
    TakeScoringSlot,
    Tick,
)
from worker.run.model import Run, RunState
from worker.run.sweeps import Sweep, Swept, needs_poll, next_poll, still_running, swept

__all__ = [
    "Action",
    "AskSlot",
    "Deploy",
    "DeployProgress",
    "Done",
    "EndRun",
    "EnterWaiting",
    "Evaluate",
    "Evaluation",
    "Failure",
    "FailureKind",
    "JobDeleted",
    "JobStatusSeen",
    "LoadRollbackSource",
    "Measure",
    "Measured",
    "Next",
    "Observation",
    "Policy",
    "PollJob",
    "PollScoring",
    "Proceed",
    "RollbackSource",
    "ServiceFacts",
    "SlotAnswer",
    "SplitData",
    "SplitSeen",
    "Stage",
    "StagedSeen",
    "StartJob",
    "StartScoring",
    "Step",
    "SubmitJob",
    "SubmitScoring",
    "Submitted",
    "Sweep",
    "Swept",
    "TakeScoringSlot",
    "Tick",
    "check_run_data",
    "decide",
    "failure_backoff",
    "needs_poll",
    "next_poll",
    "on_failure",
    "plan",
    "still_running",
    "swept",
]


# --- plan -----------------------------------------------------------------------------------


def plan(run: Run, tick: Tick, policy: Policy) -> Action:
    """What ``run`` (not ended) needs next from outside."""
    job = run.bes_job_id if run.state in (RunState.SUBMITTING, RunState.TRAINING) else None
    scoring = gating.live_scoring_job(run) if run.state is RunState.SCORING else None
    if run.cancel_requested:
        return EndRun(True, "cancelled on request", None, job, scoring)
    if run.error is not None:  # a failure recorded before its job was deleted
        return EndRun(False, run.error, run.error_code, job, scoring)
    if tick.now > run.deadline_at:
        return EndRun(False, "the run passed its deadline", "deadline_exceeded", job, scoring)
    if run.state is RunState.QUEUED:
        return _plan_queued(run, policy)
    if run.state is RunState.WAITING_SLOT:
        return AskSlot()
    if run.state is RunState.SUBMITTING:
        if run.bes_job_id is None and gating.needs_split(run):
            return SplitData()
        if run.bes_job_id is None:
            orphans = run.orphaned_submissions + (1 if run.submit_pending else 0)
            intent = m.SubmitIntent(
                submit_attempts=run.submit_attempts + 1, orphaned_submissions=orphans
            )
            return SubmitJob(intent)
        return StartJob(run.bes_job_id)
    if run.state is RunState.TRAINING:
        if run.bes_finished_seen:
            return Proceed()
        return PollJob(run.bes_job_id or "")
    if run.state is RunState.EVALUATING:
        return Evaluate()
    if run.state is RunState.STAGING:
        return Stage()
    if run.state is RunState.SCORING:
        return gating.plan_scoring(run)
    if run.state is RunState.DEPLOYING:
        return Deploy()
    raise ValueError(f"no plan for a run in state {run.state.value}")


def _plan_queued(run: Run, policy: Policy) -> Action:
    if run.rollback_to is not None:
        return LoadRollbackSource(run.rollback_to)
    service = policy.services.get(run.training_service)
    if service is None:
        reason = f"unknown training service {run.training_service!r}"
        return EndRun(cancel=False, reason=reason, code="config", job_id=None)
    if run.data_path is None and not service.has_data_parameter:
        reason = "the tenant has no training data yet; upload it first"
        return EndRun(cancel=False, reason=reason, code="no_data", job_id=None)
    try:
        check_run_data(run, service, policy.shared_data_prefixes)
    except DataPathError as exc:
        return EndRun(cancel=False, reason=str(exc), code=exc.code, job_id=None)
    return EnterWaiting()


def check_run_data(run: Run, service: ServiceFacts, shared_prefixes: Sequence[str]) -> None:
    """Raise ``DataPathError`` unless the run's data and parameters are its tenant's own."""
    if run.data_path is not None:
        check_data_path(run.tenant_id, run.data_path, shared_prefixes)
    check_global_parameters(run.global_parameters, service.data_parameter)


# --- decide ---------------------------------------------------------------------------------


def decide(run: Run, action: Action, seen: Observation, tick: Tick, policy: Policy) -> Step:
    """The step that follows from ``action`` having produced ``seen``."""
    if isinstance(seen, Failure):
        return on_failure(run, action, seen, tick, policy)
    if isinstance(action, EndRun):
        return _ended(run, action, seen)
    if isinstance(action, LoadRollbackSource):
        return _rollback(run, seen)
    if isinstance(action, EnterWaiting):
        return Step((m.Waiting(),), Next.WAIT_SLOT)
    if isinstance(action, AskSlot):
        endpoint = seen.endpoint if isinstance(seen, SlotAnswer) else None
        if endpoint is None:
            return Step((), Next.IDLE)
        return Step((m.Granted(bes_endpoint=endpoint),), Next.CONTINUE)
    if isinstance(action, SubmitJob) and isinstance(seen, Submitted):
        return Step((m.JobCreated(bes_job_id=seen.job_id),), Next.CONTINUE)
    if isinstance(action, StartJob):
        return _park(run, (m.JobStarted(),), policy.poll_min_seconds, policy)
    if isinstance(action, Proceed):
        return Step((m.JobFinished(),), Next.CONTINUE)
    if isinstance(action, PollJob) and isinstance(seen, JobStatusSeen):
        return _polled(run, seen, tick, policy)
    if isinstance(action, Evaluate) and isinstance(seen, Evaluation):
        return _judged(run, seen)
    if isinstance(action, Deploy) and isinstance(seen, DeployProgress):
        return _deployed(seen, policy)
    step = gating.decide_gating(run, action, seen, tick, policy)
    if step is not None:
        return step
    raise ValueError(f"{type(seen).__name__} does not answer {type(action).__name__}")


def _ended(run: Run, action: EndRun, seen: Observation) -> Step:
    transitions: list[m.Transition] = []
    if isinstance(seen, JobDeleted) and action.job_id and not run.bes_started:
        # Created, never started: an orphan, deleted if the service agreed.
        transitions.append(
            m.OrphanDeleted(
                orphaned_submissions=run.orphaned_submissions + 1,
                orphans_deleted=run.orphans_deleted + (1 if seen.deleted else 0),
            )
        )
    if action.cancel:
        transitions.append(m.Cancelled())
    else:
        transitions.append(m.Failed(error=action.reason, error_code=action.code))
    return Step(tuple(transitions), Next.END)


def _rollback(run: Run, seen: Observation) -> Step:
    source = seen.run if isinstance(seen, RollbackSource) else None
    if source is None or source.tenant_id != run.tenant_id or not source.deployed:
        reason = f"run {run.rollback_to} is not a deployed model of this tenant"
        return Step((m.Failed(error=reason, error_code="rollback_source"),), Next.END)
    reason = f"rollback to the model of run {source.id}"
    decision = Decision(accepted=True, reason=reason, metric="rollback")
    prepared = m.RollbackPrepared(outputs=source.outputs, metrics=source.metrics, decision=decision)
    return Step((prepared,), Next.CONTINUE)


def _park(run: Run, transitions: tuple[m.Transition, ...], delay: float, policy: Policy) -> Step:
    if policy.poll_sweeper:
        return Step(transitions, Next.PARK, delay=delay)
    return Step(transitions, Next.DEFER, delay=delay)


def _polled(run: Run, seen: JobStatusSeen, tick: Tick, policy: Policy) -> Step:
    notes = {"slot_retaken": True} if seen.slot_retaken else {}
    if still_running(seen.state):
        delay = next_poll(run, tick, policy, seen.expected)
        step = _park(run, (m.Stay(),), delay, policy)
        return Step(step.transitions, step.next, step.delay, polls=1, notes=notes)
    if seen.state is JobState.FINISHED:
        # With the sweeper on, it saw the job finish first and recorded its duration.
        duration = None if policy.poll_sweeper else training_age(run, tick.now)
        return Step(
            (m.JobFinished(),), Next.CONTINUE, polls=1, record_duration=duration, notes=notes
        )
    detail = seen.details or "no details given"
    failed = m.Failed(
        error=f"BES job {seen.state.value}: {detail}", error_code=f"bes_{seen.state.value}"
    )
    return Step((failed,), Next.END, polls=1, notes=notes)


def _judged(run: Run, seen: Evaluation) -> Step:
    if not seen.tenant_exists:
        return Step(
            (m.Failed(error="the tenant was deleted", error_code="tenant_deleted"),), Next.END
        )
    if run.evaluation == "holdout":
        return Step((gating.evaluated_for_holdout(seen.text),), Next.CONTINUE)
    try:
        metrics = parse_evaluation_csv(seen.text)
    except EvaluationError as exc:
        failed = m.Failed(error=f"evaluation CSV unreadable: {exc}", error_code="bad_evaluation")
        return Step((failed,), Next.END)
    decision = gate_decision(seen.gate or Gate(), metrics, seen.baseline)
    if run.evaluation_note is not None:
        decision = decision.model_copy(update={"note": run.evaluation_note})
    if not decision.accepted:
        return Step((m.Rejected(metrics=metrics, decision=decision),), Next.END)
    return Step((m.Judged(metrics=metrics, decision=decision),), Next.CONTINUE)


def _deployed(seen: DeployProgress, policy: Policy) -> Step:
    if seen.done:
        return Step((m.Deployed(deployed=seen.deployed, error=seen.note),), Next.END)
    if seen.lock_busy:
        return Step((m.Stay(),), Next.DEFER, delay=policy.lock_wait_seconds)
    transition: m.Transition = m.DeploySubmitted() if seen.submitted else m.Stay()
    return Step((transition,), Next.DEFER, delay=policy.deploy_poll_seconds)


# --- failures -------------------------------------------------------------------------------


def failure_backoff(failures: int, draw: float, cap: float = 60.0) -> float:
    """Seconds before retrying a step that failed transiently ``failures`` times."""
    ceiling = min(cap, 2.0 ** min(failures - 1, 10))
    return ceiling / 2 + draw * ceiling / 2


def on_failure(run: Run, action: Action, failure: Failure, tick: Tick, policy: Policy) -> Step:
    """Retry later, or fail the run (deleting its job first when it has one)."""
    before: tuple[m.Transition, ...] = gating.before_failure(run, action, failure)
    if isinstance(action, SubmitJob):
        # An answered submit created nothing; one without an answer may have created a job.
        if failure.answered:
            before = (m.SubmitAnswered(),)
        else:
            before = (
                m.SubmitIntent(
                    submit_attempts=run.submit_attempts,
                    submit_pending=False,
                    orphaned_submissions=run.orphaned_submissions + 1,
                ),
            )
    if isinstance(action, EndRun):  # deleting the job failed: end the run all the same
        return _ended(run, action, JobDeleted(deleted=False))
    if failure.kind is FailureKind.PERMANENT:
        return _fail(run, before, failure.message, failure.code)
    failures = run.step_failures + 1
    if failures > policy.step_max_failures:
        reason = f"gave up after {failures - 1} transient failures: {failure.message}"
        return _fail(run, before, reason, "retries_exhausted")
    delay = failure_backoff(failures, tick.draw)
    throttle = None
    if failure.kind is FailureKind.THROTTLED:
        if not isinstance(action, gating.GATE_ACTIONS):  # scoring does not pause training
            throttle = failure.retry_after or policy.throttle_pause_seconds
        delay = max(delay, failure.retry_after or 0.0)
    retry = m.RetryLater(
        step_failures=failures,
        last_error=failure.message,
        next_attempt_at=tick.now + timedelta(seconds=delay),
    )
    return Step((*before, retry), Next.DEFER, delay=delay, throttle_seconds=throttle)


def _fail(run: Run, before: tuple[m.Transition, ...], reason: str, code: str | None) -> Step:
    live = run.bes_job_id and run.state in (RunState.SUBMITTING, RunState.TRAINING)
    if live or (run.state is RunState.SCORING and gating.live_scoring_job(run)):
        # Its job is deleted by the next step (``plan`` sees the recorded error) before the
        # run ends, so a crash in between cannot leave the job behind.
        return Step((*before, m.Failing(error=reason, error_code=code)), Next.CONTINUE)
    return Step((*before, m.Failed(error=reason, error_code=code)), Next.END)
