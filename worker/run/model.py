"""A run's record and the only ways it can change: its states and its typed transitions.

A ``Run`` is frozen: code that wants a run to change builds a ``Transition`` (each kind names
the fields it sets, and pydantic validates their types when the transition is built) and
hands it to the ledger, which applies it with ``applied`` under a compare-and-set. A
transition class whose field is not a field of ``Run`` fails when it is defined.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.evaluate import Decision, EvaluationMode
from worker.records import Record, utcnow


class RunState(StrEnum):
    """States of a run; docs/ARCHITECTURE.md draws the diagram."""

    QUEUED = "queued"
    WAITING_SLOT = "waiting_slot"
    SUBMITTING = "submitting"
    TRAINING = "training"
    EVALUATING = "evaluating"
    STAGING = "staging"
    SCORING = "scoring"
    DEPLOYING = "deploying"
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the run has ended."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.REJECTED, RunState.FAILED, RunState.CANCELLED}
)


class Lane(StrEnum):
    """Dispatch lanes: interactive work is served before bulk work."""

    INTERACTIVE = "interactive"
    BULK = "bulk"


class BesOutputs(Record):
    """Where a run's training job writes (deterministic per run)."""

    model_path: str
    evaluation_path: str


class HoldoutSplit(Record):
    """The split of a run's data into a training blob and a holdout blob (deterministic)."""

    seed: str
    fraction: float
    train_path: str
    holdout_path: str
    train_rows: int
    holdout_rows: int
    label: str
    time_column: str | None = None


Role = Literal["champion", "challenger"]


class ScoringJob(Record):
    """One BES scoring job on the tenant's predictive web service: the champion on its live
    endpoint, the challenger on the staging endpoint; recorded before it is submitted."""

    role: Role
    web_service_id: str
    endpoint: str
    model_path: str
    output_path: str
    submit_attempts: int = 0
    submit_pending: bool = False
    orphaned_submissions: int = 0
    job_id: str | None = None
    started: bool = False
    finished: bool = False


class Run(Record):
    """One retrain of one tenant: a durable state machine advanced in short steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tenant_id: str
    seq: int
    state: RunState = RunState.QUEUED
    version: int = 0
    lane: Lane = Lane.INTERACTIVE
    batch_id: str | None = None
    reason: str = "manual"
    training_service: str = "default"
    data_path: str | None = None
    data_version: int = 0
    global_parameters: dict[str, str] = Field(default_factory=dict)
    outputs: BesOutputs
    bes_endpoint: int | None = None
    # Submits tried; one whose answer never came may have created a job (then an orphan).
    submit_attempts: int = 0
    submit_pending: bool = False
    bes_job_id: str | None = None
    bes_started: bool = False
    # Jobs this run made the service create but never started, and how many were deleted.
    orphaned_submissions: int = 0
    orphans_deleted: int = 0
    polls: int = 0
    bes_finished_seen: bool = False
    step_failures: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    cancel_requested: bool = False
    rerun_requested: bool = False
    rollback_to: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    decision: Decision | None = None
    error: str | None = None
    error_code: str | None = None
    deploy_submitted: bool = False
    deployed: bool = False
    # The champion/challenger gate: the mode in effect (set when the data is split, before the
    # training job is submitted), the split, the staging endpoint and the scoring jobs.
    evaluation: EvaluationMode | None = None
    evaluation_note: str | None = None
    holdout: HoldoutSplit | None = None
    staging_endpoint: str | None = None
    scoring_slot: bool = False
    scoring_jobs: tuple[ScoringJob, ...] = ()
    created_at: datetime = Field(default_factory=utcnow)
    deadline_at: datetime
    updated_at: datetime = Field(default_factory=utcnow)
    phases: dict[str, datetime] = Field(default_factory=dict)


def training_data_path(run: Run) -> str | None:
    """The blob the run's training job trains on: the training split in holdout mode."""
    if run.evaluation == "holdout" and run.holdout is not None:
        return run.holdout.train_path
    return run.data_path


def scoring_job(run: Run, role: Role) -> ScoringJob | None:
    """The run's scoring job of ``role``, if it has one."""
    return next((job for job in run.scoring_jobs if job.role == role), None)


def with_scoring_job(run: Run, job: ScoringJob) -> tuple[ScoringJob, ...]:
    """The run's scoring jobs with ``job`` in place of the one of its role."""
    return tuple(job if old.role == job.role else old for old in run.scoring_jobs)


# Fields the ledger keeps beside the record in the run's hash (written without a CAS by the
# API and the sweeper); a transition never sets them.
HASH_OWNED = frozenset({"cancel_requested", "rerun_requested", "polls", "bes_finished_seen"})
# Fields only ``applied`` sets.
BOOKKEEPING = frozenset({"state", "version", "updated_at", "phases"})


class Transition(BaseModel):
    """A change of a run: its target state (``None``: the run stays) and the fields it sets."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    to: ClassVar[RunState | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        foreign = set(cls.model_fields) - set(Run.model_fields)
        reserved = set(cls.model_fields) & (HASH_OWNED | BOOKKEEPING)
        if foreign or reserved:
            raise TypeError(
                f"{cls.__name__} sets fields a transition may not: {foreign | reserved}"
            )

    def changes(self) -> dict[str, Any]:
        """The fields this transition sets, by name."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def target(self, run: Run) -> RunState:
        """The state the run is in after this transition."""
        return self.to or run.state


def applied(run: Run, transitions: tuple[Transition, ...], now: datetime) -> Run:
    """The run after ``transitions`` (in order), one version on; pure.

    Entering a new state stamps its phase and clears the step's failure count and its last
    transient error.
    """
    update: dict[str, Any] = {}
    state = run.state
    for transition in transitions:
        update.update(transition.changes())
        state = transition.to or state
    if state is not run.state:
        update.setdefault("step_failures", 0)
        update.setdefault("last_error", None)
        update.setdefault("next_attempt_at", None)
        update["phases"] = {**run.phases, state.value: now}
    update.update(state=state, version=run.version + 1, updated_at=now)
    return run.model_copy(update=update)


# --- the transitions ------------------------------------------------------------------------


class Stay(Transition):
    """No field changes: the run moves on a version (so its next step gets a new job id)."""


class Waiting(Transition):
    """The run waits for a slot of its training service."""

    to = RunState.WAITING_SLOT


class Granted(Transition):
    """A slot on one endpoint was granted: submit there."""

    to = RunState.SUBMITTING
    bes_endpoint: int


class SubmitIntent(Transition):
    """A submit is about to be sent (recorded first, so a crash after it is noticed)."""

    submit_attempts: int
    submit_pending: bool = True
    orphaned_submissions: int


class SubmitAnswered(Transition):
    """The service answered a submit with an error: it created nothing."""

    submit_pending: bool = False


class JobCreated(Transition):
    """The submit answered with the job's id."""

    bes_job_id: str
    submit_pending: bool = False


class JobStarted(Transition):
    """The job was started (or found started): the run trains."""

    to = RunState.TRAINING
    bes_started: bool = True


class JobFinished(Transition):
    """The training job finished: read its evaluation."""

    to = RunState.EVALUATING


class DataSplit(Transition):
    """The data was split (or the run falls back to ``reported`` mode, saying why)."""

    evaluation: EvaluationMode
    evaluation_note: str | None = None
    holdout: HoldoutSplit | None = None


class Evaluated(Transition):
    """Holdout mode: the reported figures were read; the candidate goes to staging."""

    to = RunState.STAGING
    metrics: dict[str, float]


class Staged(Transition):
    """The candidate serves on the staging endpoint: score both models on the holdout."""

    to = RunState.SCORING
    staging_endpoint: str
    scoring_jobs: tuple[ScoringJob, ...]


class ScoringSlot(Transition):
    """The run took (True) or gave back (False) a scoring slot of its predictive service."""

    scoring_slot: bool


class ScoringChanged(Transition):
    """A scoring job's intent, id, start or end was recorded (one job per change)."""

    scoring_jobs: tuple[ScoringJob, ...]


class Judged(Transition):
    """The gate accepted the model: deploy it."""

    to = RunState.DEPLOYING
    metrics: dict[str, float]
    decision: Decision


class Rejected(Transition):
    """The gate rejected the model: it is never deployed."""

    to = RunState.REJECTED
    metrics: dict[str, float]
    decision: Decision


class RollbackPrepared(Transition):
    """A rollback run takes the outputs and figures of the run it restores, then deploys."""

    to = RunState.DEPLOYING
    outputs: BesOutputs
    metrics: dict[str, float]
    decision: Decision


class DeploySubmitted(Transition):
    """The new web service's assets were written; its provisioning is polled next."""

    deploy_submitted: bool = True


class Deployed(Transition):
    """The deploy step ended: deployed, or superseded by a newer deployed run (``error``)."""

    to = RunState.SUCCEEDED
    deployed: bool
    error: str | None = None


class RetryLater(Transition):
    """A step failed transiently: try again at ``next_attempt_at``."""

    step_failures: int
    last_error: str
    next_attempt_at: datetime


class Failed(Transition):
    """The run cannot succeed."""

    to = RunState.FAILED
    error: str
    error_code: str | None


class Failing(Transition):
    """The run cannot succeed, but its job must be deleted first (by its next step)."""

    error: str
    error_code: str | None


class Cancelled(Transition):
    """The run was cancelled on request."""

    to = RunState.CANCELLED
    error: str = "cancelled on request"


class OrphanDeleted(Transition):
    """A created job the run never started was deleted at the service."""

    orphaned_submissions: int
    orphans_deleted: int
