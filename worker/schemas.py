"""Records shared by the API and the worker: tenants, runs, batches, models (the contract)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.cron import CronExpression
from worker.evaluate import Decision, Gate

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN)]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class RunState(StrEnum):
    """States of a run; see ARCHITECTURE.md for the diagram."""

    QUEUED = "queued"
    WAITING_SLOT = "waiting_slot"
    SUBMITTING = "submitting"
    TRAINING = "training"
    EVALUATING = "evaluating"
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


class Record(BaseModel):
    """Base of stored records: unknown fields are rejected so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")


class ClassicTarget(Record):
    """Deploy to a per-tenant endpoint of a classic predictive web service."""

    kind: Literal["classic"] = "classic"
    web_service_id: str = Field(min_length=1, max_length=64)
    resource_name: str = Field(min_length=1, max_length=200)


class NewServiceTarget(Record):
    """Deploy to the tenant's own new (ARM) web service, created from a template service."""

    kind: Literal["new"] = "new"
    template_service: str = Field(min_length=1, max_length=120)


Target = Annotated[ClassicTarget | NewServiceTarget, Field(discriminator="kind")]


class DeployedModel(Record):
    """A model that serves (or served) a tenant's endpoint or service."""

    run_id: str
    seq: int
    model_path: str
    metrics: dict[str, float] = Field(default_factory=dict)
    deployed_at: datetime
    rollback_of: str | None = None


class Tenant(Record):
    """A customer with one model: where it trains, where it deploys, what gates it."""

    id: TenantId
    display_name: str = Field(default="", max_length=200)
    target: Target
    training_service: str = Field(default="default", max_length=64)
    data_path: str | None = Field(default=None, max_length=1024)
    data_version: int = 0
    global_parameters: dict[str, str] = Field(default_factory=dict)
    gate: Gate | None = None
    schedule: CronExpression | None = None
    created_at: datetime = Field(default_factory=utcnow)
    endpoint_name: str | None = None
    service_name: str | None = None
    deployed: DeployedModel | None = None
    api_key_hashes: list[str] = Field(default_factory=list)
    deleted: bool = False
    remote_removal: Literal["requested", "done", "failed"] | None = None


class BesOutputs(Record):
    """Where a run's BES job writes (deterministic per run) and what it reported."""

    model_path: str
    evaluation_path: str


class Run(Record):
    """One retrain of one tenant: a durable state machine advanced in short steps."""

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
    submit_attempts: int = 0
    bes_job_id: str | None = None
    bes_started: bool = False
    orphaned_submissions: int = 0
    polls: int = 0
    bes_finished_seen: bool = False
    step_failures: int = 0
    cancel_requested: bool = False
    rerun_requested: bool = False
    rollback_to: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    decision: Decision | None = None
    error: str | None = None
    error_code: str | None = None
    deploy_submitted: bool = False
    deployed: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    deadline_at: datetime
    updated_at: datetime = Field(default_factory=utcnow)
    phases: dict[str, datetime] = Field(default_factory=dict)


class Batch(Record):
    """A bulk retrain of many tenants; counts by state live beside it in Redis."""

    id: str
    lane: Lane = Lane.BULK
    total: int
    created_at: datetime = Field(default_factory=utcnow)
    reason: str = "bulk"
