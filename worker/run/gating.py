"""The champion/challenger part of the run machine: split, stage, score, measure (pure).

A run in ``holdout`` mode splits its data before its training job is submitted (the job
trains on the training blob only), and after training PATCHes the candidate onto the
tenant's staging endpoint, scores the holdout with both models through BES on the tenant's
predictive web service (the champion on its live endpoint, the challenger on staging; one
job at a time under a leased scoring slot, each job's intent recorded before its submit and
only a recorded job started), then measures both on the same rows and decides.
``worker/run/machine.py`` hands these states and actions here.
"""

from __future__ import annotations

from worker.azureml.bes import JobState
from worker.evaluate import EvaluationError, parse_evaluation_csv
from worker.measures import MeasureError
from worker.run import model as m
from worker.run.actions import (
    Action,
    Done,
    Failure,
    JobStatusSeen,
    Measure,
    Measured,
    Next,
    Observation,
    Policy,
    PollScoring,
    SlotAnswer,
    SplitData,
    SplitSeen,
    Stage,
    StagedSeen,
    StartScoring,
    Step,
    SubmitScoring,
    Submitted,
    TakeScoringSlot,
    Tick,
)
from worker.run.model import Run
from worker.scoring_gate import HoldoutRows, Scored, ScoredError, bootstrap_seed, judge_holdout

# The gate's actions: a throttled answer to them pauses no training service's dispatch.
GATE_ACTIONS = (
    SplitData,
    Stage,
    TakeScoringSlot,
    SubmitScoring,
    StartScoring,
    PollScoring,
    Measure,
)


def scored_path(run: Run, role: m.Role) -> str:
    """Where the scoring job of ``role`` writes its scored CSV (deterministic per run)."""
    return f"models/{run.tenant_id}/{run.id}.{role}.scored.csv"


def live_scoring_job(run: Run) -> m.ScoringJob | None:
    """A scoring job the service created and that has not ended, if any (deleted on end)."""
    return next((j for j in run.scoring_jobs if j.job_id and not j.finished), None)


def needs_split(run: Run) -> bool:
    """Whether the run must split its data (choosing its evaluation mode) before submitting."""
    return run.evaluation is None and run.rollback_to is None


# --- plan -----------------------------------------------------------------------------------


def plan_scoring(run: Run) -> Action:
    """The next action of a run in ``scoring``: one job at a time, then the measure."""
    pending = next((job for job in run.scoring_jobs if not job.finished), None)
    if pending is None:
        return Measure()
    if not run.scoring_slot:
        return TakeScoringSlot()
    if pending.job_id is None:
        intent = pending.model_copy(
            update={
                "submit_attempts": pending.submit_attempts + 1,
                "submit_pending": True,
                "orphaned_submissions": pending.orphaned_submissions
                + (1 if pending.submit_pending else 0),
            }
        )
        jobs = m.with_scoring_job(run, intent)
        return SubmitScoring(pending, m.ScoringChanged(scoring_jobs=jobs))
    if not pending.started:
        return StartScoring(pending)
    return PollScoring(pending)


# --- decide ---------------------------------------------------------------------------------


def _changed(run: Run, job: m.ScoringJob, **update: object) -> m.ScoringChanged:
    current = m.scoring_job(run, job.role) or job
    return m.ScoringChanged(scoring_jobs=m.with_scoring_job(run, current.model_copy(update=update)))


def decide_gating(
    run: Run, action: Action, seen: Observation, tick: Tick, policy: Policy
) -> Step | None:
    """The step of a champion/challenger action (None: not one of them)."""
    if isinstance(action, SplitData) and isinstance(seen, SplitSeen):
        return Step((_split(seen),), Next.CONTINUE)
    if isinstance(action, Stage) and isinstance(seen, StagedSeen):
        return _staged(run, seen, policy)
    if isinstance(action, TakeScoringSlot) and isinstance(seen, SlotAnswer):
        if seen.endpoint is None:  # jittered, so waiting runs do not try again in step
            delay = policy.scoring_slot_wait_seconds * (0.5 + tick.draw)
            return Step((m.Stay(),), Next.DEFER, delay=delay)
        return Step((m.ScoringSlot(scoring_slot=True),), Next.CONTINUE)
    if isinstance(action, SubmitScoring) and isinstance(seen, Submitted):
        changed = _changed(run, action.job, job_id=seen.job_id, submit_pending=False)
        return Step((changed,), Next.CONTINUE)
    if isinstance(action, StartScoring) and isinstance(seen, Done):
        delay = policy.scoring_poll_seconds
        return Step((_changed(run, action.job, started=True),), Next.DEFER, delay=delay)
    if isinstance(action, PollScoring):
        return _polled(run, action.job, seen, tick, policy)
    if isinstance(action, Measure) and isinstance(seen, Measured):
        return _measured(run, seen)
    return None


def _split(seen: SplitSeen) -> m.DataSplit:
    split = seen.split
    if split is None:
        return m.DataSplit(evaluation="reported", evaluation_note=seen.note)
    if split.holdout_rows < seen.min_rows:
        note = (
            f"the holdout has {split.holdout_rows} rows, fewer than the minimum "
            f"{seen.min_rows}: the candidate trains on all rows and is judged on its "
            "reported evaluation"
        )
        return m.DataSplit(evaluation="reported", evaluation_note=note, holdout=split)
    return m.DataSplit(evaluation="holdout", holdout=split)


def evaluated_for_holdout(text: str) -> m.Evaluated:
    """Holdout mode keeps the candidate's reported figures for the record (if readable)."""
    try:
        metrics = parse_evaluation_csv(text)
    except EvaluationError:
        metrics = {}
    return m.Evaluated(metrics=metrics)


def _staged(run: Run, seen: StagedSeen, policy: Policy) -> Step:
    jobs = [
        m.ScoringJob(
            role="challenger",
            web_service_id=seen.web_service_id,
            endpoint=seen.staging_endpoint,
            model_path=run.outputs.model_path,
            output_path=scored_path(run, "challenger"),
        )
    ]
    if seen.champion_endpoint is not None and seen.champion_model is not None:
        jobs.append(
            m.ScoringJob(
                role="champion",
                web_service_id=seen.web_service_id,
                endpoint=seen.champion_endpoint,
                model_path=seen.champion_model,
                output_path=scored_path(run, "champion"),
            )
        )
    staged = m.Staged(staging_endpoint=seen.staging_endpoint, scoring_jobs=tuple(jobs))
    # A PATCHed model takes a while to serve on real Azure (about 30 s; no status API).
    if policy.staging_settle_seconds > 0:
        return Step((staged,), Next.DEFER, delay=policy.staging_settle_seconds)
    return Step((staged,), Next.CONTINUE)


def _polled(
    run: Run, job: m.ScoringJob, seen: Observation, tick: Tick, policy: Policy
) -> Step | None:
    if not isinstance(seen, JobStatusSeen):
        return None
    if seen.state in (JobState.NOT_STARTED, JobState.RUNNING):
        delay = policy.scoring_poll_seconds * (0.75 + tick.draw / 2)
        return Step((m.Stay(),), Next.DEFER, delay=delay)
    if seen.state is JobState.FINISHED:
        return Step((_changed(run, job, finished=True),), Next.CONTINUE)
    detail = seen.details or "no details given"
    failed = m.Failed(
        error=f"BES scoring job of the {job.role} {seen.state.value}: {detail}",
        error_code=f"scoring_{seen.state.value}",
    )
    # The job ended, so nothing is left to delete.
    return Step((_changed(run, job, finished=True), failed), Next.END)


def _measured(run: Run, seen: Measured) -> Step:
    given_back = m.ScoringSlot(scoring_slot=False)
    if not seen.tenant_exists:
        failed = m.Failed(error="the tenant was deleted", error_code="tenant_deleted")
        return Step((given_back, failed), Next.END)
    challenger_job = m.scoring_job(run, "challenger")
    champion_job = m.scoring_job(run, "champion")
    problem = seen.problem
    if run.holdout is None or challenger_job is None:
        problem = problem or "the run has no holdout or no scored challenger"
    if problem is None and (seen.labels is None or seen.challenger is None):
        problem = "the holdout's labels or the challenger's scores were not read"
    decision = None
    if problem is None and run.holdout and challenger_job and seen.labels and seen.challenger:
        champion = None
        if champion_job is not None and seen.champion is not None:
            champion = Scored(seen.champion, champion_job.output_path, champion_job.model_path)
        try:
            decision = judge_holdout(
                seen.gate,
                HoldoutRows(seen.labels, run.holdout.holdout_path),
                Scored(seen.challenger, challenger_job.output_path, challenger_job.model_path),
                champion,
                seed=bootstrap_seed(run.id),
                interval=seen.interval if champion is not None else None,
            )
        except (ScoredError, MeasureError) as exc:
            problem = str(exc)
    if decision is None:
        failed = m.Failed(
            error=f"the holdout could not be measured: {problem}",
            error_code="holdout_unmeasurable",
        )
        return Step((given_back, failed), Next.END)
    if not decision.accepted:
        return Step((given_back, m.Rejected(metrics=run.metrics, decision=decision)), Next.END)
    return Step((given_back, m.Judged(metrics=run.metrics, decision=decision)), Next.CONTINUE)


# --- failures -------------------------------------------------------------------------------


def before_failure(run: Run, action: Action, failure: Failure) -> tuple[m.Transition, ...]:
    """What a failed scoring submit records first: an unanswered one may have made a job."""
    if not isinstance(action, SubmitScoring):
        return ()
    job = m.scoring_job(run, action.job.role) or action.job
    orphans = job.orphaned_submissions + (0 if failure.answered else 1)
    return (_changed(run, job, submit_pending=False, orphaned_submissions=orphans),)
