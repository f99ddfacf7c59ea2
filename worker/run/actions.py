"""The machine's vocabulary: its inputs, the actions a run asks for, the observations the
step loop reports back, and the step a decision returns (``worker/run/machine.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from worker.azureml.bes import JobState
from worker.evaluate import Gate
from worker.run import model as m
from worker.run.model import Run
from worker.scoring_gate import Improvement

# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceFacts:
    """What the machine knows of a configured training service."""

    has_data_parameter: bool
    data_parameter: str | None = None
    # Whether its jobs can train on a separate training blob (holdout mode needs it).
    splits: bool = True
    label_column: str | None = None


@dataclass(frozen=True)
class Policy:
    """The settings the machine decides by (built once from the worker's settings)."""

    services: Mapping[str, ServiceFacts]
    shared_data_prefixes: tuple[str, ...] = ()
    step_max_failures: int = 8
    poll_min_seconds: float = 1.0
    poll_max_seconds: float = 30.0
    throttle_pause_seconds: float = 5.0
    poll_sweeper: bool = True
    deploy_poll_seconds: float = 1.0
    lock_wait_seconds: float = 1.0
    scoring_poll_seconds: float = 1.0
    scoring_slot_wait_seconds: float = 2.0
    staging_settle_seconds: float = 0.0


@dataclass(frozen=True)
class Tick:
    """The moment of a decision and a uniform draw in [0, 1) for jitter (so it stays pure)."""

    now: datetime
    draw: float = 0.5


# --- actions: what a run needs from outside -------------------------------------------------


class Action:
    """Base of actions; ``failpoint`` names the crash point after its call, if any."""

    failpoint: str | None = None


@dataclass(frozen=True)
class EndRun(Action):
    """End the run (cancel or fail); its job, if any, is deleted at the service first."""

    cancel: bool
    reason: str
    code: str | None
    job_id: str | None
    scoring: m.ScoringJob | None = None


@dataclass(frozen=True)
class LoadRollbackSource(Action):
    """Read the earlier run a rollback restores."""

    source_run_id: str


@dataclass(frozen=True)
class EnterWaiting(Action):
    """Nothing to call: the run joins its service's waiting set."""


@dataclass(frozen=True)
class AskSlot(Action):
    """Find whether a slot was granted (dispatching free ones first)."""


@dataclass(frozen=True)
class SubmitJob(Action):
    """Submit the training job; ``intent`` is recorded before the call."""

    intent: m.SubmitIntent
    failpoint: str | None = "bes.after_submit"


@dataclass(frozen=True)
class StartJob(Action):
    """Start the submitted job (found started already is fine)."""

    job_id: str
    failpoint: str | None = "bes.after_start"


@dataclass(frozen=True)
class PollJob(Action):
    """Hold the run's slot, then read the job's status."""

    job_id: str
    failpoint: str | None = "bes.poll"


@dataclass(frozen=True)
class Proceed(Action):
    """Nothing to call: the sweeper saw the job finish already."""


@dataclass(frozen=True)
class Evaluate(Action):
    """Give back the slot, read the evaluation output and the tenant's gate and baseline."""

    failpoint: str | None = "evaluate.after_read"


@dataclass(frozen=True)
class SplitData(Action):
    """Read the tenant's gate and split the run's data into training and holdout blobs
    (its crash point, ``split.after_write``, is met only when blobs were written)."""


@dataclass(frozen=True)
class Stage(Action):
    """PATCH the candidate onto the tenant's staging endpoint (created on first use)."""

    failpoint: str | None = "staging.after_patch"


@dataclass(frozen=True)
class TakeScoringSlot(Action):
    """Lease a scoring slot of the tenant's predictive web service."""


@dataclass(frozen=True)
class SubmitScoring(Action):
    """Submit a scoring job; ``intent`` (the jobs with its intent) is recorded first."""

    job: m.ScoringJob
    intent: m.ScoringChanged
    failpoint: str | None = "scoring.after_submit"


@dataclass(frozen=True)
class StartScoring(Action):
    """Start a recorded scoring job (found started already is fine)."""

    job: m.ScoringJob
    failpoint: str | None = "scoring.after_start"


@dataclass(frozen=True)
class PollScoring(Action):
    """Keep the scoring slot, then read the scoring job's status."""

    job: m.ScoringJob


@dataclass(frozen=True)
class Measure(Action):
    """Give back the scoring slot, read labels and scores, and the tenant's gate."""

    failpoint: str | None = "evaluate.after_read"


@dataclass(frozen=True)
class Deploy(Action):
    """Deploy (or keep deploying) the run's model to the tenant's target."""


# --- observations: what the step loop saw ---------------------------------------------------


class FailureKind(StrEnum):
    """How a failed call or check is handled."""

    THROTTLED = "throttled"  # retry later and pause dispatch of the service
    TRANSIENT = "transient"  # retry later with backoff
    PERMANENT = "permanent"  # the run fails with ``code``


@dataclass(frozen=True)
class Failure:
    """A call or check failed. ``answered``: the remote side sent an HTTP answer."""

    kind: FailureKind
    message: str
    code: str | None = None
    retry_after: float | None = None
    answered: bool = True


@dataclass(frozen=True)
class Done:
    """The action's call succeeded and returned nothing the machine needs."""


@dataclass(frozen=True)
class JobDeleted:
    """The outcome of deleting the run's job before it ends (best effort)."""

    deleted: bool


@dataclass(frozen=True)
class RollbackSource:
    """The run a rollback restores, if it is one of the tenant's deployed models."""

    run: Run | None


@dataclass(frozen=True)
class SlotAnswer:
    """The endpoint of the slot the run holds, or None when it still waits."""

    endpoint: int | None


@dataclass(frozen=True)
class Submitted:
    """The service created the job."""

    job_id: str


@dataclass(frozen=True)
class JobStatusSeen:
    """The job's state; ``expected`` is the service's typical job duration, if known."""

    state: JobState
    details: str | None = None
    expected: float | None = None
    slot_retaken: bool = False


@dataclass(frozen=True)
class Evaluation:
    """The evaluation output's text and what the gate compares it with."""

    text: str
    gate: Gate | None
    baseline: dict[str, float] | None
    tenant_exists: bool = True


@dataclass(frozen=True)
class SplitSeen:
    """The split written (``split``), or why the run cannot be judged on a holdout."""

    split: m.HoldoutSplit | None
    min_rows: int = 0
    note: str | None = None


@dataclass(frozen=True)
class StagedSeen:
    """The staging endpoint serves the candidate; the live endpoint, if a model serves."""

    web_service_id: str
    staging_endpoint: str
    champion_endpoint: str | None
    champion_model: str | None


@dataclass(frozen=True)
class Measured:
    """What the holdout gate needs: the gate, labels, both models' scores (pure data)."""

    gate: Gate
    labels: list[float] | None = None
    challenger: list[float] | None = None
    champion: list[float] | None = None
    problem: str | None = None
    tenant_exists: bool = True
    interval: Improvement | None = None  # computed off the event loop (CPU-bound)


@dataclass(frozen=True)
class DeployProgress:
    """One deploy step: ended (deployed, or superseded with a ``note``), or to be polled."""

    done: bool
    deployed: bool = False
    note: str | None = None
    submitted: bool = False
    lock_busy: bool = False


Observation = (
    Failure
    | Done
    | JobDeleted
    | RollbackSource
    | SlotAnswer
    | Submitted
    | JobStatusSeen
    | Evaluation
    | DeployProgress
    | SplitSeen
    | StagedSeen
    | Measured
)


# --- outputs --------------------------------------------------------------------------------


class Next(StrEnum):
    """What comes after a step."""

    CONTINUE = "continue"  # the next step may run at once (inline)
    DEFER = "defer"  # the next step runs after ``delay`` s
    PARK = "park"  # the job is polled by the sweeper in ``delay`` s
    WAIT_SLOT = "wait_slot"  # the run waits for a slot; no step pending
    END = "end"  # the run ended: tail work (slot, follow-up) follows
    IDLE = "idle"  # nothing changed and no step is pending


@dataclass(frozen=True)
class Step:
    """What a decision records and what comes next."""

    transitions: tuple[m.Transition, ...]
    next: Next
    delay: float = 0.0
    polls: int = 0
    throttle_seconds: float | None = None
    record_duration: float | None = None
    notes: Mapping[str, object] = field(default_factory=dict)
