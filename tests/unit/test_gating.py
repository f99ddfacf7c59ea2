"""The champion/challenger part of the run machine: split, stage, score one job at a time,
measure and decide; failures and ends of runs holding a scoring job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from worker.azureml.bes import JobState
from worker.evaluate import Gate
from worker.run import machine as mc
from worker.run import model as m
from worker.run.model import BesOutputs, HoldoutSplit, Run, RunState, ScoringJob

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TICK = mc.Tick(now=NOW, draw=0.5)
POLICY = mc.Policy(services={"default": mc.ServiceFacts(has_data_parameter=False)})
SPLIT = HoldoutSplit(
    seed="r1",
    fraction=0.2,
    train_path="data/t/splits/r1.train.csv",
    holdout_path="data/t/splits/r1.holdout.csv",
    train_rows=80,
    holdout_rows=20,
    label="y",
)


def run(state: RunState, **fields: Any) -> Run:
    """A run of tenant ``t`` in ``state``."""
    base: dict[str, Any] = {
        "id": "r1",
        "tenant_id": "t",
        "seq": 2,
        "state": state,
        "data_path": "data/t/v1.csv",
        "outputs": BesOutputs(model_path="models/t/r1.ilearner", evaluation_path="e"),
        "deadline_at": NOW + timedelta(hours=1),
        "phases": {state.value: NOW - timedelta(seconds=30)},
    }
    return Run.model_validate({**base, **fields})


def job(role: m.Role, **fields: Any) -> ScoringJob:
    """A scoring job of ``role``."""
    base: dict[str, Any] = {
        "role": role,
        "web_service_id": "svc",
        "endpoint": "stage" if role == "challenger" else "live",
        "model_path": f"models/t/{role}.ilearner",
        "output_path": f"models/t/r1.{role}.scored.csv",
    }
    return ScoringJob.model_validate({**base, **fields})


def scoring(*jobs: ScoringJob, **fields: Any) -> Run:
    """A holdout-mode run scoring ``jobs``."""
    fields = {"scoring_slot": True, **fields}
    return run(RunState.SCORING, evaluation="holdout", holdout=SPLIT, scoring_jobs=jobs, **fields)


def decide(subject: Run, action: mc.Action, seen: mc.Observation) -> mc.Step:
    """The machine's step."""
    return mc.decide(subject, action, seen, TICK, POLICY)


# --- split --------------------------------------------------------------------------------------


def test_a_run_splits_its_data_before_its_first_submit_only() -> None:
    """No mode chosen yet: split first; once chosen (or a rollback), submit as before."""
    assert isinstance(mc.plan(run(RunState.SUBMITTING), TICK, POLICY), mc.SplitData)
    chosen = run(RunState.SUBMITTING, evaluation="reported")
    assert isinstance(mc.plan(chosen, TICK, POLICY), mc.SubmitJob)


def test_a_split_with_enough_rows_puts_the_run_in_holdout_mode() -> None:
    """The split is recorded and the job trains on the training blob."""
    step = decide(run(RunState.SUBMITTING), mc.SplitData(), mc.SplitSeen(SPLIT, min_rows=20))
    assert step.next is mc.Next.CONTINUE
    moved = m.applied(run(RunState.SUBMITTING), step.transitions, NOW)
    assert (moved.evaluation, moved.holdout) == ("holdout", SPLIT)
    assert m.training_data_path(moved) == SPLIT.train_path


def test_a_holdout_below_the_minimum_falls_back_to_reported_and_says_so() -> None:
    """Too few held-out rows: reported mode, the note names both counts, all rows train."""
    step = decide(run(RunState.SUBMITTING), mc.SplitData(), mc.SplitSeen(SPLIT, min_rows=30))
    moved = m.applied(run(RunState.SUBMITTING), step.transitions, NOW)
    assert moved.evaluation == "reported"
    assert moved.evaluation_note is not None
    assert "20 rows" in moved.evaluation_note
    assert "30" in moved.evaluation_note
    assert m.training_data_path(moved) == "data/t/v1.csv"


def test_a_reported_decision_carries_the_fallback_note() -> None:
    """The gate's decision of a run that fell back says why it was not judged on a holdout."""
    subject = run(RunState.EVALUATING, evaluation="reported", evaluation_note="too few")
    csv = "Coefficient of Determination\n0.9\n"
    step = decide(subject, mc.Evaluate(), mc.Evaluation(csv, Gate(), None))
    judged = step.transitions[-1]
    assert isinstance(judged, m.Judged)
    assert judged.decision.note == "too few"


# --- evaluating, staging ------------------------------------------------------------------------


def test_a_holdout_run_goes_from_evaluating_to_staging_keeping_its_reported_figures() -> None:
    """The Evaluate Model CSV is recorded; nothing is decided on it."""
    subject = run(RunState.EVALUATING, evaluation="holdout", holdout=SPLIT)
    step = decide(subject, mc.Evaluate(), mc.Evaluation("R2\n0.5\n", Gate(), {"R2": 0.9}))
    assert [type(t) for t in step.transitions] == [m.Evaluated]
    moved = m.applied(subject, step.transitions, NOW)
    assert (moved.state, moved.metrics, moved.decision) == (RunState.STAGING, {"R2": 0.5}, None)
    assert isinstance(mc.plan(moved, TICK, POLICY), mc.Stage)


def test_staging_names_a_challenger_and_a_champion_job_when_a_model_serves() -> None:
    """Two jobs (challenger on staging, champion on live), or the challenger alone."""
    subject = run(RunState.STAGING, evaluation="holdout", holdout=SPLIT)
    seen = mc.StagedSeen("svc", "stage", "live", "models/t/r0.ilearner")
    moved = m.applied(subject, decide(subject, mc.Stage(), seen).transitions, NOW)
    assert moved.state is RunState.SCORING
    assert [(j.role, j.endpoint) for j in moved.scoring_jobs] == [
        ("challenger", "stage"),
        ("champion", "live"),
    ]
    challenger = m.scoring_job(moved, "challenger")
    assert challenger is not None
    assert challenger.model_path == subject.outputs.model_path
    alone = mc.StagedSeen("svc", "stage", None, None)
    assert (
        len(m.applied(subject, decide(subject, mc.Stage(), alone).transitions, NOW).scoring_jobs)
        == 1
    )


def test_staging_waits_for_the_patched_model_to_serve_when_told() -> None:
    """A settle time defers the first scoring step."""
    subject = run(RunState.STAGING, evaluation="holdout", holdout=SPLIT)
    policy = mc.Policy(services=POLICY.services, staging_settle_seconds=30)
    step = mc.decide(subject, mc.Stage(), mc.StagedSeen("svc", "s", None, None), TICK, policy)
    assert (step.next, step.delay) == (mc.Next.DEFER, 30)


# --- scoring ------------------------------------------------------------------------------------


def test_scoring_takes_a_slot_then_submits_starts_and_polls_one_job_at_a_time() -> None:
    """The plan walks the jobs in order; both finished: measure."""
    first = job("challenger")
    assert isinstance(mc.plan(scoring(first, scoring_slot=False), TICK, POLICY), mc.TakeScoringSlot)
    submit = mc.plan(scoring(first, job("champion")), TICK, POLICY)
    assert isinstance(submit, mc.SubmitScoring)
    assert submit.job.role == "challenger"
    intent = submit.intent.scoring_jobs[0]
    assert (intent.submit_attempts, intent.submit_pending) == (1, True)
    created = job("challenger", job_id="j1", submit_attempts=1)
    assert isinstance(mc.plan(scoring(created), TICK, POLICY), mc.StartScoring)
    started = job("challenger", job_id="j1", started=True)
    assert isinstance(mc.plan(scoring(started), TICK, POLICY), mc.PollScoring)
    done = job("challenger", job_id="j1", started=True, finished=True)
    assert mc.plan(scoring(done, job("champion")), TICK, POLICY) == mc.SubmitScoring(
        job("champion"),
        m.ScoringChanged(
            scoring_jobs=(done, job("champion", submit_attempts=1, submit_pending=True))
        ),
    )
    assert isinstance(mc.plan(scoring(done), TICK, POLICY), mc.Measure)


def test_a_full_scoring_cap_defers_and_a_free_one_is_recorded() -> None:
    """No slot: try again later (a new version, so the step is a new arq job)."""
    subject = scoring(job("challenger"), scoring_slot=False)
    waiting = decide(subject, mc.TakeScoringSlot(), mc.SlotAnswer(None))
    assert (waiting.next, [type(t) for t in waiting.transitions]) == (mc.Next.DEFER, [m.Stay])
    taken = decide(subject, mc.TakeScoringSlot(), mc.SlotAnswer(0))
    assert m.applied(subject, taken.transitions, NOW).scoring_slot


def test_a_scoring_submit_after_an_unanswered_one_counts_an_orphan() -> None:
    """An intent left pending is an orphan; an unanswered failure counts one too."""
    pending = scoring(job("challenger", submit_attempts=1, submit_pending=True))
    again = mc.plan(pending, TICK, POLICY)
    assert isinstance(again, mc.SubmitScoring)
    assert again.intent.scoring_jobs[0].orphaned_submissions == 1
    lost = mc.Failure(mc.FailureKind.TRANSIENT, "timeout", answered=False)
    step = decide(pending, again, lost)
    recorded = m.applied(pending, step.transitions, NOW).scoring_jobs[0]
    assert (recorded.submit_pending, recorded.orphaned_submissions) == (False, 1)
    assert step.next is mc.Next.DEFER


def test_a_submitted_scoring_job_is_recorded_and_a_started_one_polled_later() -> None:
    """The id first; only a recorded id is started."""
    subject = scoring(job("challenger", submit_attempts=1, submit_pending=True))
    action = mc.SubmitScoring(job("challenger"), m.ScoringChanged(scoring_jobs=()))
    moved = m.applied(subject, decide(subject, action, mc.Submitted("j9")).transitions, NOW)
    assert moved.scoring_jobs[0].job_id == "j9"
    assert not moved.scoring_jobs[0].submit_pending
    started = decide(moved, mc.StartScoring(moved.scoring_jobs[0]), mc.Done())
    assert started.next is mc.Next.DEFER
    assert m.applied(moved, started.transitions, NOW).scoring_jobs[0].started


def test_a_polled_scoring_job_runs_on_finishes_or_fails_the_run() -> None:
    """Running: later; Finished: recorded; Failed: the run fails with the job's details."""
    polled = job("challenger", job_id="j", started=True)
    subject = scoring(polled)
    running = decide(subject, mc.PollScoring(polled), mc.JobStatusSeen(JobState.RUNNING))
    assert running.next is mc.Next.DEFER
    finished = decide(subject, mc.PollScoring(polled), mc.JobStatusSeen(JobState.FINISHED))
    assert m.applied(subject, finished.transitions, NOW).scoring_jobs[0].finished
    failed = decide(subject, mc.PollScoring(polled), mc.JobStatusSeen(JobState.FAILED, "boom"))
    ended = m.applied(subject, failed.transitions, NOW)
    assert (ended.state, ended.error_code) == (RunState.FAILED, "scoring_Failed")
    assert ended.error is not None
    assert "boom" in ended.error


def test_a_run_ending_while_a_scoring_job_runs_deletes_that_job_first() -> None:
    """Cancel names the live scoring job; a permanent failure records Failing first."""
    live = job("challenger", job_id="j", started=True)
    cancelled = mc.plan(scoring(live, cancel_requested=True), TICK, POLICY)
    assert isinstance(cancelled, mc.EndRun)
    assert cancelled.scoring == live
    broken = mc.Failure(mc.FailureKind.PERMANENT, "gone", "x")
    step = decide(scoring(live), mc.PollScoring(live), broken)
    assert [type(t) for t in step.transitions] == [m.Failing]
    done = job("challenger", job_id="j", started=True, finished=True)
    assert mc.plan(scoring(done, cancel_requested=True), TICK, POLICY) == mc.EndRun(
        True, "cancelled on request", None, None, None
    )


# --- measure and decide -------------------------------------------------------------------------


LABELS = [float(i) for i in range(40)]
GOOD = [y + (0.5 if i % 2 else -0.5) for i, y in enumerate(LABELS)]
POOR = [20.0 for _ in LABELS]
DONE = (
    job("challenger", job_id="a", started=True, finished=True),
    job("champion", job_id="b", started=True, finished=True),
)


def test_a_better_challenger_is_deployed_with_both_figures_recorded() -> None:
    """Same rows, both metrics, the difference, the rows, the scored blobs, in words."""
    subject = scoring(*DONE, metrics={"reported": 1.0})
    seen = mc.Measured(Gate(evaluation="holdout"), LABELS, GOOD, POOR)
    step = decide(subject, mc.Measure(), seen)
    moved = m.applied(subject, step.transitions, NOW)
    assert (moved.state, moved.scoring_slot, moved.metrics) == (
        RunState.DEPLOYING,
        False,
        {"reported": 1.0},
    )
    decision = moved.decision
    assert decision is not None
    assert decision.accepted
    assert decision.evaluation == "holdout"
    comparison = decision.comparison
    assert comparison is not None
    assert comparison.holdout_rows == 40
    assert comparison.champion_metrics is not None
    assert comparison.challenger_scored == DONE[0].output_path
    assert comparison.champion_scored == DONE[1].output_path
    assert comparison.difference is not None
    assert comparison.difference > 0.9
    assert "40 held-out rows" in decision.reason


def test_a_worse_challenger_is_rejected_and_never_deploys() -> None:
    """Scored worse than the champion by more than allowed on the same rows: rejected."""
    subject = scoring(*DONE)
    step = decide(subject, mc.Measure(), mc.Measured(Gate(), LABELS, POOR, GOOD))
    moved = m.applied(subject, step.transitions, NOW)
    assert moved.state is RunState.REJECTED
    assert moved.decision is not None
    assert "regresses" in moved.decision.reason


def test_without_a_champion_the_threshold_alone_decides() -> None:
    """No deployed model: the challenger passes or fails its threshold."""
    alone = scoring(DONE[0])
    ok = decide(alone, mc.Measure(), mc.Measured(Gate(threshold=0.5), LABELS, GOOD))
    assert m.applied(alone, ok.transitions, NOW).state is RunState.DEPLOYING
    low = decide(alone, mc.Measure(), mc.Measured(Gate(threshold=0.5), LABELS, POOR))
    assert m.applied(alone, low.transitions, NOW).state is RunState.REJECTED


def test_unmeasurable_rows_fail_the_run_with_their_own_code() -> None:
    """Row counts that differ, or a problem reading them, end the run."""
    subject = scoring(*DONE)
    short = decide(subject, mc.Measure(), mc.Measured(Gate(), LABELS, GOOD[:-1], POOR))
    assert m.applied(subject, short.transitions, NOW).error_code == "holdout_unmeasurable"
    told = decide(subject, mc.Measure(), mc.Measured(Gate(), problem="no column"))
    assert m.applied(subject, told.transitions, NOW).error_code == "holdout_unmeasurable"


def test_a_throttled_scoring_call_waits_without_pausing_training_dispatch() -> None:
    """A 429 from a predictive service defers the scoring step; training dispatch goes on."""
    polled = job("challenger", job_id="j", started=True)
    busy = mc.Failure(mc.FailureKind.THROTTLED, "429", retry_after=7.0)
    step = decide(scoring(polled), mc.PollScoring(polled), busy)
    assert (step.next, step.throttle_seconds) == (mc.Next.DEFER, None)
    assert step.delay >= 7.0
