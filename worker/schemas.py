"""Records shared by the API and the worker: tenants, batches, models (the contract).

Runs are defined by ``worker.run.model`` and named here too, as part of the same contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import Field

from worker.cron import CronExpression
from worker.evaluate import Decision, Gate
from worker.records import Record, utcnow
from worker.run.model import TERMINAL_STATES, BesOutputs, Lane, Run, RunState

__all__ = [
    "TARGET_KINDS",
    "TERMINAL_STATES",
    "Batch",
    "BesOutputs",
    "ClassicTarget",
    "DeployedModel",
    "Lane",
    "NewServiceTarget",
    "Record",
    "Retention",
    "Run",
    "RunState",
    "Target",
    "TargetKind",
    "Tenant",
    "TenantId",
    "V2PoolTarget",
    "utcnow",
]

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN)]


class ClassicTarget(Record):
    """Deploy to a per-tenant endpoint of a classic predictive web service."""

    kind: Literal["classic"] = "classic"
    web_service_id: str = Field(min_length=1, max_length=64)
    resource_name: str = Field(min_length=1, max_length=200)


class NewServiceTarget(Record):
    """Deploy to the tenant's own new (ARM) web service, created from a template service."""

    kind: Literal["new"] = "new"
    template_service: str = Field(min_length=1, max_length=120)


class V2PoolTarget(Record):
    """Serve from a pool of an Azure ML v2 workspace: the tenant's registry pointer names the
    version the pool's endpoint serves it (``docs/AZUREML-V2.md`` §5-6). Onboarding without
    ``pool`` assigns the pool with the most room; a stored tenant always names its pool."""

    kind: Literal["v2_pool"] = "v2_pool"
    pool: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


Target = Annotated[ClassicTarget | NewServiceTarget | V2PoolTarget, Field(discriminator="kind")]
TargetKind = Literal["classic", "new", "v2_pool"]
TARGET_KINDS: tuple[str, ...] = get_args(TargetKind)


class DeployedModel(Record):
    """A model that serves (or served) a tenant's endpoint or service."""

    run_id: str
    seq: int
    model_path: str
    metrics: dict[str, float] = Field(default_factory=dict)
    deployed_at: datetime
    rollback_of: str | None = None
    decision: Decision | None = Field(
        default=None,
        description="the gate's decision that deployed it (holdout mode: champion and "
        "challenger on the same rows in decision.comparison)",
    )


class Retention(Record):
    """A tenant's own retention of finished runs in Redis; a field left null takes the
    global setting (``RETRAINQ_ARCHIVE__KEEP_*``)."""

    keep_runs: int | None = Field(
        default=None, ge=1, le=100_000, description="finished runs always kept"
    )
    keep_days: float | None = Field(
        default=None, ge=0, le=3650, description="finished runs younger than this are kept"
    )
    keep_deployed: int | None = Field(
        default=None, ge=1, le=1000, description="deployed versions whose runs are kept"
    )


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
    retention: Retention | None = None
    deleted_at: datetime | None = Field(
        default=None, description="when the tenant was offboarded (its grace period starts)"
    )


class Batch(Record):
    """A bulk retrain of many tenants; counts by state live beside it in Redis."""

    id: str
    lane: Lane = Lane.BULK
    total: int
    created_at: datetime = Field(default_factory=utcnow)
    reason: str = "bulk"
