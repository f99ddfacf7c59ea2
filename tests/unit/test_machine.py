"""The pure run machine: every state's plan, every action's observations, failures, sweeps."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.azureml.bes import JobState
from worker.evaluate import Decision, Gate
from worker.run import machine as mc
from worker.run import model as m
from worker.run.model import BesOutputs, Run, RunState

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TICK = mc.Tick(now=NOW, draw=0.5)
POLICY = mc.Policy(services={"default": mc.ServiceFacts(has_data_parameter=False)})
CSV = "Coefficient of Determination,Mean Absolute Error\n0.9,3.0\n"


def run(state: RunState = RunState.QUEUED, **fields: Any) -> Run:
    """A run of tenant ``t`` in ``state`` with data, started an hour ago."""
    base: dict[str, Any] = {
        "id": "r1",
        "tenant_id": "t",
        "seq": 1,
        "state": state,
        "data_path": "data/t/v1.csv",
        "outputs": BesOutputs(model_path="m", evaluation_path="e"),
        "deadline_at": NOW + timedelta(hours=1),
        "phases": {state.value: NOW - timedelta(seconds=30)},
        "evaluation": "reported",
    }
    return Run.model_validate({**base, **fields})


def kinds(step: mc.Step) -> list[type[m.Transition]]:
    """The transition classes of a step, in order."""
    return [type(t) for t in step.transitions]


# --- plan --------------------------------------------------------------------------------------

PLANS: list[tuple[str, Run, type[mc.Action]]] = [
    ("queued", run(), mc.EnterWaiting),
    ("queued rollback", run(rollback_to="r0"), mc.LoadRollbackSource),
    ("queued, unknown service", run(training_service="gone"), mc.EndRun),
    ("queued, no data", run(data_path=None), mc.EndRun),
    ("queued, foreign data", run(data_path="data/other/v1.csv"), mc.EndRun),
    ("waiting", run(RunState.WAITING_SLOT), mc.AskSlot),
    ("submitting, no job", run(RunState.SUBMITTING, bes_endpoint=0), mc.SubmitJob),
    ("submitting, job", run(RunState.SUBMITTING, bes_job_id="j"), mc.StartJob),
    ("training", run(RunState.TRAINING, bes_job_id="j"), mc.PollJob),
    ("training, seen finished", run(RunState.TRAINING, bes_finished_seen=True), mc.Proceed),
    ("evaluating", run(RunState.EVALUATING), mc.Evaluate),
    ("deploying", run(RunState.DEPLOYING), mc.Deploy),
    ("cancel asked", run(RunState.TRAINING, cancel_requested=True), mc.EndRun),
    ("deadline passed", run(RunState.WAITING_SLOT, deadline_at=NOW - timedelta(1)), mc.EndRun),
    ("failure recorded", run(RunState.SUBMITTING, error="x", error_code="c"), mc.EndRun),
]


@pytest.mark.parametrize(("case", "subject", "expected"), PLANS, ids=[p[0] for p in PLANS])
def test_each_state_plans_what_it_needs(case: str, subject: Run, expected: type) -> None:
    """What a run needs next follows from its state and flags alone."""
    assert type(mc.plan(subject, TICK, POLICY)) is expected, case


def test_a_cancel_of_a_job_holding_run_deletes_its_job_first() -> None:
    """Cancel and deadline name the job to delete only in the states that have one."""
    cancelled = mc.plan(run(RunState.TRAINING, bes_job_id="j", cancel_requested=True), TICK, POLICY)
    assert cancelled == mc.EndRun(True, "cancelled on request", None, "j")
    late = run(RunState.EVALUATING, bes_job_id="j", deadline_at=NOW - timedelta(1))
    assert mc.plan(late, TICK, POLICY) == mc.EndRun(
        False, "the run passed its deadline", "deadline_exceeded", None
    )


def test_a_run_on_another_tenants_data_fails_with_its_own_code() -> None:
    """Data outside the tenant's prefix (and not under a shared one) never reaches a job."""
    foreign = mc.plan(run(data_path="data/other/v1.csv"), TICK, POLICY)
    assert isinstance(foreign, mc.EndRun)
    assert foreign.code == "foreign_data_path"
    shared = mc.Policy(services=POLICY.services, shared_data_prefixes=("shared/",))
    assert isinstance(mc.plan(run(data_path="shared/all.csv"), TICK, shared), mc.EnterWaiting)


def test_a_submit_after_an_unanswered_one_counts_an_orphan() -> None:
    """An intent left pending (crash after sending) is an orphan the next intent counts."""
    fresh = mc.plan(run(RunState.SUBMITTING), TICK, POLICY)
    assert isinstance(fresh, mc.SubmitJob)
    assert (fresh.intent.submit_attempts, fresh.intent.orphaned_submissions) == (1, 0)
    again = mc.plan(run(RunState.SUBMITTING, submit_attempts=1, submit_pending=True), TICK, POLICY)
    assert isinstance(again, mc.SubmitJob)
    assert (again.intent.submit_attempts, again.intent.orphaned_submissions) == (2, 1)


def test_a_run_that_ended_has_no_plan() -> None:
    """Terminal runs are not planned for."""
    with pytest.raises(ValueError, match="succeeded"):
        mc.plan(run(RunState.SUCCEEDED), TICK, POLICY)


# --- decide ------------------------------------------------------------------------------------

ACCEPT = Decision(accepted=True, reason="ok", metric="m")
DEPLOYED_SOURCE = run(RunState.SUCCEEDED, id="r0", deployed=True, metrics={"x": 1.0})

DECISIONS: list[tuple[str, Run, mc.Action, mc.Observation, list[type], mc.Next]] = [
    ("enter waiting", run(), mc.EnterWaiting(), mc.Done(), [m.Waiting], mc.Next.WAIT_SLOT),
    (
        "slot granted",
        run(RunState.WAITING_SLOT),
        mc.AskSlot(),
        mc.SlotAnswer(1),
        [m.Granted],
        mc.Next.CONTINUE,
    ),
    (
        "no slot yet",
        run(RunState.WAITING_SLOT),
        mc.AskSlot(),
        mc.SlotAnswer(None),
        [],
        mc.Next.IDLE,
    ),
    (
        "submitted",
        run(RunState.SUBMITTING),
        mc.SubmitJob(m.SubmitIntent(submit_attempts=1, orphaned_submissions=0)),
        mc.Submitted("j"),
        [m.JobCreated],
        mc.Next.CONTINUE,
    ),
    (
        "started",
        run(RunState.SUBMITTING, bes_job_id="j"),
        mc.StartJob("j"),
        mc.Done(),
        [m.JobStarted],
        mc.Next.PARK,
    ),
    (
        "still running",
        run(RunState.TRAINING, bes_job_id="j"),
        mc.PollJob("j"),
        mc.JobStatusSeen(JobState.RUNNING),
        [m.Stay],
        mc.Next.PARK,
    ),
    (
        "still queued remotely",
        run(RunState.TRAINING, bes_job_id="j"),
        mc.PollJob("j"),
        mc.JobStatusSeen(JobState.NOT_STARTED),
        [m.Stay],
        mc.Next.PARK,
    ),
    (
        "finished",
        run(RunState.TRAINING, bes_job_id="j"),
        mc.PollJob("j"),
        mc.JobStatusSeen(JobState.FINISHED),
        [m.JobFinished],
        mc.Next.CONTINUE,
    ),
    (
        "job failed",
        run(RunState.TRAINING, bes_job_id="j"),
        mc.PollJob("j"),
        mc.JobStatusSeen(JobState.FAILED, "boom"),
        [m.Failed],
        mc.Next.END,
    ),
    (
        "job cancelled remotely",
        run(RunState.TRAINING, bes_job_id="j"),
        mc.PollJob("j"),
        mc.JobStatusSeen(JobState.CANCELLED),
        [m.Failed],
        mc.Next.END,
    ),
    (
        "seen finished",
        run(RunState.TRAINING, bes_finished_seen=True),
        mc.Proceed(),
        mc.Done(),
        [m.JobFinished],
        mc.Next.CONTINUE,
    ),
    (
        "accepted",
        run(RunState.EVALUATING),
        mc.Evaluate(),
        mc.Evaluation(CSV, None, None),
        [m.Judged],
        mc.Next.CONTINUE,
    ),
    (
        "rejected",
        run(RunState.EVALUATING),
        mc.Evaluate(),
        mc.Evaluation(CSV, Gate(threshold=0.95), None),
        [m.Rejected],
        mc.Next.END,
    ),
    (
        "unreadable evaluation",
        run(RunState.EVALUATING),
        mc.Evaluate(),
        mc.Evaluation("nothing", None, None),
        [m.Failed],
        mc.Next.END,
    ),
    (
        "tenant deleted",
        run(RunState.EVALUATING),
        mc.Evaluate(),
        mc.Evaluation(CSV, None, None, tenant_exists=False),
        [m.Failed],
        mc.Next.END,
    ),
    (
        "deployed",
        run(RunState.DEPLOYING),
        mc.Deploy(),
        mc.DeployProgress(True, True),
        [m.Deployed],
        mc.Next.END,
    ),
    (
        "deploy written",
        run(RunState.DEPLOYING),
        mc.Deploy(),
        mc.DeployProgress(False, submitted=True),
        [m.DeploySubmitted],
        mc.Next.DEFER,
    ),
    (
        "provisioning",
        run(RunState.DEPLOYING),
        mc.Deploy(),
        mc.DeployProgress(False),
        [m.Stay],
        mc.Next.DEFER,
    ),
    (
        "deploy lock busy",
        run(RunState.DEPLOYING),
        mc.Deploy(),
        mc.DeployProgress(False, lock_busy=True),
        [m.Stay],
        mc.Next.DEFER,
    ),
    (
        "rollback source",
        run(rollback_to="r0"),
        mc.LoadRollbackSource("r0"),
        mc.RollbackSource(DEPLOYED_SOURCE),
        [m.RollbackPrepared],
        mc.Next.CONTINUE,
    ),
    (
        "rollback to nothing",
        run(rollback_to="r0"),
        mc.LoadRollbackSource("r0"),
        mc.RollbackSource(None),
        [m.Failed],
        mc.Next.END,
    ),
    (
        "cancel, no job",
        run(RunState.WAITING_SLOT),
        mc.EndRun(True, "c", None, None),
        mc.Done(),
        [m.Cancelled],
        mc.Next.END,
    ),
    (
        "cancel, started job deleted",
        run(RunState.TRAINING, bes_job_id="j", bes_started=True),
        mc.EndRun(True, "c", None, "j"),
        mc.JobDeleted(True),
        [m.Cancelled],
        mc.Next.END,
    ),
    (
        "fail, unstarted job deleted",
        run(RunState.SUBMITTING, bes_job_id="j"),
        mc.EndRun(False, "x", "c", "j"),
        mc.JobDeleted(True),
        [m.OrphanDeleted, m.Failed],
        mc.Next.END,
    ),
]


@pytest.mark.parametrize(
    ("case", "subject", "action", "seen", "transitions", "after"),
    DECISIONS,
    ids=[d[0] for d in DECISIONS],
)
def test_each_observation_decides_the_transitions_and_what_comes_next(
    case: str,
    subject: Run,
    action: mc.Action,
    seen: mc.Observation,
    transitions: list[type],
    after: mc.Next,
) -> None:
    """Every action's observations map to recorded transitions and a next step."""
    step = mc.decide(subject, action, seen, TICK, POLICY)
    assert (kinds(step), step.next) == (transitions, after), case


def test_an_observation_that_does_not_answer_its_action_is_a_bug() -> None:
    """Mismatched pairs are refused loudly instead of moving the run."""
    with pytest.raises(ValueError, match="Submitted"):
        mc.decide(run(RunState.TRAINING), mc.PollJob("j"), mc.Submitted("j"), TICK, POLICY)


def test_without_the_sweeper_polls_are_deferred_steps_and_durations_recorded() -> None:
    """poll_sweeper off: a running job's next poll is a deferred step; a finished one's
    duration is recorded by the step."""
    policy = mc.Policy(services=POLICY.services, poll_sweeper=False)
    training = run(RunState.TRAINING, bes_job_id="j")
    running = mc.decide(training, mc.PollJob("j"), mc.JobStatusSeen(JobState.RUNNING), TICK, policy)
    assert (running.next, running.polls) == (mc.Next.DEFER, 1)
    done = mc.decide(training, mc.PollJob("j"), mc.JobStatusSeen(JobState.FINISHED), TICK, policy)
    assert done.record_duration == pytest.approx(30.0)


def test_the_gate_compares_with_the_deployed_models_metrics() -> None:
    """A candidate worse than the baseline beyond the allowed regression is rejected."""
    seen = mc.Evaluation(CSV, Gate(max_regression=0.01), {"Coefficient of Determination": 0.95})
    step = mc.decide(run(RunState.EVALUATING), mc.Evaluate(), seen, TICK, POLICY)
    assert kinds(step) == [m.Rejected]


# --- failures ----------------------------------------------------------------------------------


def failure(kind: mc.FailureKind, **fields: Any) -> mc.Failure:
    """A failure of ``kind`` with message ``m``."""
    return mc.Failure(kind, "m", **fields)


def test_transient_failures_retry_with_growing_backoff_then_give_up() -> None:
    """Each transient failure defers the step; past the maximum the run fails."""
    waiting = run(RunState.WAITING_SLOT, step_failures=2)
    step = mc.on_failure(waiting, mc.AskSlot(), failure(mc.FailureKind.TRANSIENT), TICK, POLICY)
    assert kinds(step) == [m.RetryLater]
    assert step.next is mc.Next.DEFER
    assert 2.0 <= step.delay <= 4.0
    retry = step.transitions[0]
    assert isinstance(retry, m.RetryLater)
    assert (retry.step_failures, retry.last_error) == (3, "m")
    assert retry.next_attempt_at == NOW + timedelta(seconds=step.delay)
    worn = run(RunState.WAITING_SLOT, step_failures=POLICY.step_max_failures)
    step = mc.on_failure(worn, mc.AskSlot(), failure(mc.FailureKind.TRANSIENT), TICK, POLICY)
    assert kinds(step) == [m.Failed]
    failed = step.transitions[0]
    assert isinstance(failed, m.Failed)
    assert failed.error_code == "retries_exhausted"


def test_a_throttled_call_pauses_dispatch_and_waits_at_least_retry_after() -> None:
    """429/503 with Retry-After: the step waits that long and the service is throttled."""
    seen = failure(mc.FailureKind.THROTTLED, retry_after=30.0)
    step = mc.on_failure(run(RunState.WAITING_SLOT), mc.AskSlot(), seen, TICK, POLICY)
    assert (step.delay, step.throttle_seconds) == (30.0, 30.0)
    bare = mc.on_failure(
        run(RunState.WAITING_SLOT), mc.AskSlot(), failure(mc.FailureKind.THROTTLED), TICK, POLICY
    )
    assert bare.throttle_seconds == POLICY.throttle_pause_seconds


def test_a_permanent_failure_ends_the_run_with_its_code_at_once() -> None:
    """A permanent failure is never retried, and its remote code is kept."""
    seen = failure(mc.FailureKind.PERMANENT, code="UnexpectedParameter")
    step = mc.on_failure(run(RunState.EVALUATING), mc.Evaluate(), seen, TICK, POLICY)
    assert kinds(step) == [m.Failed]
    assert step.next is mc.Next.END
    failed = step.transitions[0]
    assert isinstance(failed, m.Failed)
    assert failed.error_code == "UnexpectedParameter"


def test_a_run_with_a_job_records_its_failure_and_deletes_the_job_next() -> None:
    """Failing with a job: the failure is recorded first; the next plan deletes the job."""
    training = run(RunState.TRAINING, bes_job_id="j")
    seen = failure(mc.FailureKind.PERMANENT, code="c")
    step = mc.on_failure(training, mc.PollJob("j"), seen, TICK, POLICY)
    assert (kinds(step), step.next) == ([m.Failing], mc.Next.CONTINUE)
    failing = m.applied(training, step.transitions, NOW)
    assert mc.plan(failing, TICK, POLICY) == mc.EndRun(False, "m", "c", "j")


@pytest.mark.parametrize(
    ("answered", "expected"),
    [(True, (m.SubmitAnswered, 0)), (False, (m.SubmitIntent, 1))],
)
def test_only_an_unanswered_submit_counts_an_orphan(
    answered: bool, expected: tuple[type, int]
) -> None:
    """A submit the service answered with an error created nothing; an unanswered one may."""
    submitting = run(RunState.SUBMITTING, submit_attempts=1, submit_pending=True)
    action = mc.SubmitJob(m.SubmitIntent(submit_attempts=1, orphaned_submissions=0))
    seen = failure(mc.FailureKind.TRANSIENT, answered=answered)
    step = mc.on_failure(submitting, action, seen, TICK, POLICY)
    after = m.applied(submitting, step.transitions, NOW)
    assert type(step.transitions[0]) is expected[0]
    assert (after.orphaned_submissions, after.submit_pending) == (expected[1], False)


def test_a_failed_delete_still_ends_the_run() -> None:
    """Deleting the job is best effort: the run ends anyway."""
    action = mc.EndRun(True, "c", None, "j")
    seen = failure(mc.FailureKind.TRANSIENT)
    step = mc.on_failure(run(RunState.TRAINING, bes_job_id="j"), action, seen, TICK, POLICY)
    assert (kinds(step), step.next) == ([m.OrphanDeleted, m.Cancelled], mc.Next.END)


def test_failure_backoff_is_jittered_exponential_and_capped() -> None:
    """Each failure doubles the ceiling; the wait stays within [ceiling/2, ceiling]."""
    for failures, ceiling in [(1, 1.0), (2, 2.0), (4, 8.0), (30, 60.0)]:
        for draw in (0.0, 0.5, 0.999):
            assert ceiling / 2 <= mc.failure_backoff(failures, draw) <= ceiling


# --- sweeps ------------------------------------------------------------------------------------

SWEEPS_WITHOUT_POLL: list[tuple[str, Run | None, mc.Swept]] = [
    ("gone", None, mc.Swept(mc.Sweep.GONE)),
    ("not training", run(RunState.EVALUATING, bes_job_id="j"), mc.Swept(mc.Sweep.GONE)),
    (
        "seen finished",
        run(RunState.TRAINING, bes_job_id="j", bes_finished_seen=True),
        mc.Swept(mc.Sweep.WOKEN),
    ),
    (
        "cancel asked",
        run(RunState.TRAINING, bes_job_id="j", cancel_requested=True),
        mc.Swept(mc.Sweep.WOKEN, hold=True),
    ),
    (
        "deadline",
        run(RunState.TRAINING, bes_job_id="j", deadline_at=NOW - timedelta(1)),
        mc.Swept(mc.Sweep.WOKEN, hold=True),
    ),
]


@pytest.mark.parametrize(
    ("case", "subject", "expected"), SWEEPS_WITHOUT_POLL, ids=[s[0] for s in SWEEPS_WITHOUT_POLL]
)
def test_parked_runs_that_need_no_poll(case: str, subject: Run | None, expected: mc.Swept) -> None:
    """Gone, woken without a poll, or woken holding the slot (the job may still run)."""
    assert mc.needs_poll(subject, TICK) == expected, case
    assert mc.needs_poll(run(RunState.TRAINING, bes_job_id="j"), TICK) is None


def test_a_sweep_keeps_running_jobs_and_frees_ended_ones() -> None:
    """Running: next poll and lease kept; ended: slot released, finished ones marked."""
    parked = run(RunState.TRAINING, bes_job_id="j")
    running = mc.swept(parked, JobState.RUNNING, TICK, POLICY, None)
    assert (running.outcome, running.hold, running.release) == (mc.Sweep.RUNNING, True, False)
    assert running.poll_in == mc.next_poll(parked, TICK, POLICY, None)
    finished = mc.swept(parked, JobState.FINISHED, TICK, POLICY, None)
    assert (finished.release, finished.finished, finished.duration) == (True, True, 30.0)
    failed = mc.swept(parked, JobState.FAILED, TICK, POLICY, None)
    assert (failed.outcome, failed.release, failed.finished) == (mc.Sweep.WOKEN, True, False)
    unknown = mc.swept(parked, None, TICK, POLICY, None)
    assert (unknown.outcome, unknown.hold) == (mc.Sweep.WOKEN, True)


# --- the model's transitions -------------------------------------------------------------------


def _transition_classes() -> list[type[m.Transition]]:
    return [
        value
        for value in vars(m).values()
        if isinstance(value, type) and issubclass(value, m.Transition) and value is not m.Transition
    ]


def test_every_transition_field_is_a_run_field_of_the_same_type() -> None:
    """A transition can only set what a run has, typed as the run types it (or narrower:
    a required ``int`` where the run allows ``int | None``)."""
    for cls in _transition_classes():
        for name, info in cls.model_fields.items():
            declared = Run.model_fields[name].annotation
            allowed = {declared, *typing.get_args(declared)}
            assert info.annotation in allowed, (cls.__name__, name)


def test_a_transition_with_a_foreign_field_cannot_be_defined() -> None:
    """Defining a transition that sets a field runs lack fails at once."""
    with pytest.raises(TypeError, match="colour"):

        class Paint(m.Transition):
            colour: str

    with pytest.raises(TypeError, match="state"):

        class Jump(m.Transition):
            state: RunState


def test_entering_a_state_stamps_its_phase_and_clears_the_retry_record() -> None:
    """A new state: phase time stamped, failures and last error cleared, version bumped."""
    retrying = run(
        RunState.WAITING_SLOT, step_failures=3, last_error="x", next_attempt_at=NOW, version=4
    )
    after = m.applied(retrying, (m.Granted(bes_endpoint=1),), NOW)
    assert after.state is RunState.SUBMITTING
    assert after.phases[RunState.SUBMITTING.value] == NOW
    assert (after.step_failures, after.last_error, after.next_attempt_at) == (0, None, None)
    assert (after.version, after.bes_endpoint, after.updated_at) == (5, 1, NOW)
    stayed = m.applied(retrying, (m.Stay(),), NOW)
    assert (stayed.state, stayed.step_failures, stayed.phases) == (
        RunState.WAITING_SLOT,
        3,
        retrying.phases,
    )
