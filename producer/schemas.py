"""Request and response bodies of the HTTP API (the OpenAPI document is built from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from worker.cron import CronExpression
from worker.evaluate import Decision, Gate
from worker.schemas import DeployedModel, Retention, Run, RunState, Target, TargetKind, TenantId

MAX_BATCH_TENANTS = 10_000
RUN_ID_PATTERN = r"^[0-9a-f]{32}$"
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ParamValue = Annotated[str, StringConstraints(max_length=4096)]
BlobPath = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*$",
    ),
]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=120)]


class Body(BaseModel):
    """Base of request bodies: unknown fields are rejected (422)."""

    model_config = ConfigDict(extra="forbid")


class TenantCreate(Body):
    """Onboard a tenant: where it trains and deploys; ``train`` starts its first run."""

    id: TenantId
    display_name: str = Field(default="", max_length=200)
    target: Target
    training_service: str = Field(default="default", min_length=1, max_length=64)
    data_path: BlobPath | None = Field(
        default=None, description="blob path of existing training data (or upload it later)"
    )
    global_parameters: dict[ParamName, ParamValue] = Field(default_factory=dict, max_length=64)
    gate: Gate | None = Field(
        default=None,
        description="when a new model may replace the deployed one; a tenant onboarded "
        "without one (or without gate.evaluation) is judged in holdout mode",
    )
    schedule: CronExpression | None = None
    retention: Retention | None = Field(
        default=None, description="the tenant's own retention in Redis (admin only)"
    )
    train: bool = True

    @model_validator(mode="after")
    def _new_tenants_judge_on_a_holdout(self) -> Self:
        # Stored gates without the field mean "reported" (what they always meant); a tenant
        # onboarded now is judged on fresh held-out rows unless its gate says otherwise.
        if self.gate is None:
            self.gate = Gate(evaluation="holdout")
        elif "evaluation" not in self.gate.model_fields_set:
            self.gate = self.gate.model_copy(update={"evaluation": "holdout"})
        return self


class TenantPatch(Body):
    """Change a tenant; fields left out stay as they are, ``null`` clears optional ones."""

    display_name: str | None = Field(default=None, max_length=200)
    target: Target | None = None
    training_service: str | None = Field(default=None, min_length=1, max_length=64)
    data_path: BlobPath | None = None
    global_parameters: dict[ParamName, ParamValue] | None = Field(default=None, max_length=64)
    gate: Gate | None = None
    schedule: CronExpression | None = None
    retention: Retention | None = Field(
        default=None,
        description="the tenant's own retention in Redis, replacing any earlier one (fields "
        "left out take the global settings; null clears it); admin only",
    )


class TenantView(BaseModel):
    """A tenant as the API shows it (no key hashes)."""

    id: str
    display_name: str
    target: Target
    training_service: str
    data_path: str | None
    data_version: int
    global_parameters: dict[str, str]
    gate: Gate | None
    schedule: str | None
    created_at: datetime
    endpoint_name: str | None
    service_name: str | None
    deployed: DeployedModel | None
    retention: Retention | None = Field(
        default=None, description="the tenant's own retention; null: the global settings"
    )
    verified: bool | None = Field(
        default=None,
        description="whether the target passed the onboarding preflight (false: onboarded "
        "with verify=false or with the preflight off; null: before preflights existed)",
    )


class TenantCreated(BaseModel):
    """The onboarded tenant, its API key (shown only here) and its first run, if any."""

    tenant: TenantView
    api_key: str = Field(description="the tenant's API key; it is stored hashed, shown once")
    run: Run | None = None


class Offboarded(BaseModel):
    """A tenant that was offboarded, and the active run that was asked to cancel."""

    tenant_id: str
    cancelled_run_id: str | None
    remote_removal: Literal["requested"] | None = Field(
        default=None, description="'requested' when the endpoint or web service is being removed"
    )


ModelState = Literal["retraining", "up_to_date", "kept_previous", "no_model"]


class TenantListItem(TenantView):
    """A tenant in a listing, with the state of its model and of its latest run."""

    model_state: ModelState | None = Field(
        default=None,
        description="retraining (a run is active), up_to_date (the latest run deployed), "
        "kept_previous (the latest run was rejected, failed or cancelled), no_model",
    )
    latest_run_state: RunState | None = Field(
        default=None, description="the state of the tenant's newest run (null without one)"
    )


class TenantPage(BaseModel):
    """One page of tenants; ``next_cursor`` (or ``next_offset``) continues the listing (None
    at the end)."""

    items: list[TenantListItem]
    total: int = Field(description="tenants in the index (before any filter)")
    matched: int | None = Field(
        default=None,
        description="tenants that passed the filters (of those scanned; in creation order "
        "without a filter or cursor, every tenant of the index, read without a scan)",
    )
    scanned: int | None = Field(
        default=None, description="tenants read (the scan is capped on huge fleets)"
    )
    sort: str = Field(default="created", description="the order of the listing")
    offset: int
    limit: int
    next_offset: int | None
    next_cursor: str | None = Field(
        default=None, description="pass as ``cursor`` (with the same sort) for the next page"
    )


class RunView(Run):
    """A run; ``archived`` when it was read from the archive in blob storage (it no longer
    changes)."""

    archived: bool = Field(
        default=False, description="true: read from the archive; absent for runs in Redis"
    )


class RunPage(BaseModel):
    """One page of a tenant's runs, newest first, from Redis and then from the archive
    (archived runs marked ``archived: true``); ``next_cursor`` continues it."""

    items: list[RunView]
    offset: int
    limit: int
    next_offset: int | None
    next_cursor: str | None = Field(
        default=None,
        description="pass as ``cursor`` for the next page (None at the end); pages by "
        "creation time, so runs the archiver moves meanwhile are neither repeated nor skipped",
    )


class RunList(BaseModel):
    """Runs that passed a listing's filters, newest first (with ``tenant``, archived runs
    too, marked ``archived: true``)."""

    items: list[RunView]
    limit: int
    more: bool = Field(description="more runs passed the filters than ``limit``")
    scanned: int = Field(description="runs read to find these")
    truncated: bool = Field(
        description="only the newest runs were read (the newest 1000 of one tenant; without "
        "tenant or batch, the newest 20 of each of the newest 500 tenants): older ones may "
        "match too"
    )


class RetrainRequest(Body):
    """Ask for a retrain of one tenant (the body is optional)."""

    reason: Reason = "manual"


class RunAccepted(BaseModel):
    """A run that will happen: new, or the tenant's active run (``coalesced``)."""

    run: Run
    coalesced: bool


class DataUploaded(BaseModel):
    """Where an uploaded training CSV was stored and its data version."""

    tenant_id: str
    data_version: int
    data_path: str
    size_bytes: int
    columns: list[str]


class BatchCreate(Body):
    """A bulk retrain: listed tenants, or all tenants (optionally of one target kind)."""

    tenant_ids: list[TenantId] | None = Field(default=None, max_length=MAX_BATCH_TENANTS)
    all: bool = False
    target_kind: TargetKind | None = None
    reason: Reason = "bulk"

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if self.all == (self.tenant_ids is not None):
            raise ValueError("give either tenant_ids or all: true")
        if self.tenant_ids is not None and not self.tenant_ids:
            raise ValueError("tenant_ids must not be empty")
        return self


class BatchAccepted(BaseModel):
    """A bulk retrain that was accepted: its id and what it started."""

    batch_id: str
    total: int = Field(description="runs created for this batch")
    coalesced: int = Field(description="tenants that already had an active run")
    not_found: list[str] = Field(description="listed tenant ids that do not exist")


BatchState = Literal["running", "succeeded", "finished_with_failures", "failed", "cancelled"]


class BatchStatus(BaseModel):
    """Progress of a bulk retrain."""

    id: str
    created_at: datetime
    reason: str
    total: int
    done: int
    progress: float = Field(ge=0, le=1)
    counts: dict[str, int]
    state: BatchState = Field(
        default="running",
        description="running (some runs have not ended); once every run ended: succeeded (each "
        "run succeeded or was rejected by its gate), cancelled (some were cancelled, none "
        "failed), failed (none succeeded or was rejected: every run failed or was cancelled, "
        "at least one failed), finished_with_failures (some failed, some did not)",
    )
    throughput_per_second: float | None = Field(
        description="runs ended per second since the batch was created (up to the last end "
        "once every run ended); null until enough is known: at least 2 runs ended (every run, "
        "in smaller batches) and no fewer ended than are in flight (submitting, training, "
        "evaluating or deploying), so a first wave of quick failures does not set the pace"
    )
    eta_seconds: float | None = Field(
        description="seconds until every run has ended at that throughput (runs not yet ended "
        "/ throughput); 0 once every run ended; null while the throughput is unknown"
    )
    archived: bool = Field(
        default=False,
        description="true: read from its summary in the archive (the batch's run list is gone)",
    )


class Models(BaseModel):
    """A tenant's current model and its deployment history, newest first."""

    current: DeployedModel | None
    history: list[DeployedModel]


class ProblemDetails(BaseModel):
    """An error (RFC 9457 ``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class Health(BaseModel):
    """Liveness or readiness."""

    model_config = ConfigDict(extra="allow")

    status: str


class ScheduleBody(Body):
    """A fleet-wide schedule: retrain every tenant (optionally of one kind) on a cron (UTC)."""

    cron: CronExpression
    target_kind: TargetKind | None = None


class ScheduleView(BaseModel):
    """A schedule and when it fires next."""

    name: str
    cron: str
    kind: Literal["tenant", "fleet"]
    tenant_id: str | None
    target_kind: TargetKind | None
    next_fire_at: datetime


class SchedulePage(BaseModel):
    """Schedules, soonest first."""

    items: list[ScheduleView]


# --- fleet dashboard (read-only views) ------------------------------------------------------


class Caller(BaseModel):
    """Who the API key belongs to: an admin (every tenant) or one tenant."""

    admin: bool
    tenant_id: str | None


class FleetTenants(BaseModel):
    """Tenants by target kind and by the state of their current model."""

    total: int = Field(description="tenants in the index")
    scanned: int = Field(description="tenants counted (the scan is capped on huge fleets)")
    complete: bool = Field(
        default=True,
        description="false when the fleet is larger than the scan reads (200,000 tenants): "
        "by_kind, by_model_state and the runs of the window then count only the first "
        "``scanned`` tenants by onboarding, so each count is a lower bound (at least N)",
    )
    by_kind: dict[str, int]
    by_model_state: dict[str, int] = Field(
        description="retraining (a run is active), up_to_date (the latest run deployed), "
        "kept_previous (the latest run was rejected, failed or cancelled; the old model "
        "serves), no_model"
    )


class EndpointSlots(BaseModel):
    """BES slots of one endpoint of a training service: leased and its cap."""

    index: int = Field(description="the endpoint's position in the service's settings")
    slots_in_use: int
    max_concurrent_jobs: int


class ServiceLoad(BaseModel):
    """BES slots of one training service: leased, cap, runs waiting by lane, throttle state."""

    name: str
    slots_in_use: int
    max_running: int | None
    waiting_interactive: int
    waiting_bulk: int
    throttled: bool = Field(
        description="dispatch to this service is paused after it answered 429 or 503"
    )
    throttle_seconds_left: float | None = Field(
        default=None, description="seconds until dispatch resumes; null while not throttled"
    )
    endpoints: list[EndpointSlots] = Field(
        default_factory=list, description="slots per BES endpoint (configured services only)"
    )


class Backlog(BaseModel):
    """Steps on the arq queue (ready now or deferred) and runs waiting for a BES slot."""

    ready: int
    deferred: int
    waiting_slot: int


class HourCounts(BaseModel):
    """Runs created in one hour, by their current state."""

    start: datetime
    counts: dict[str, int]


class Activity(BaseModel):
    """Runs created in buckets of ``bucket_seconds``, oldest first, from the bucket of the
    oldest run of the window (or a few buckets earlier) to now."""

    bucket_seconds: int
    buckets: list[HourCounts]


class FleetOverview(BaseModel):
    """The fleet at a glance: tenants, slots per training service, backlog, recent runs."""

    generated_at: datetime
    tenants: FleetTenants
    services: list[ServiceLoad]
    backlog: Backlog
    hours: int
    runs_by_hour: list[HourCounts] = Field(description="oldest first, one entry per hour")
    activity: Activity | None = Field(
        default=None,
        description="runs of the window by state in buckets spanning only the part that has "
        "runs (for a chart scaled to its data)",
    )
    runs_by_state: dict[str, int] = Field(description="runs created in the last ``hours``")


class BatchPage(BaseModel):
    """Recent bulk retrains, newest first."""

    items: list[BatchStatus]
    total: int


class RunBrief(BaseModel):
    """A run as a timeline needs it: phases with timestamps, outcome, error."""

    id: str
    tenant_id: str
    seq: int
    state: RunState
    reason: str
    training_service: str
    bes_job_id: str | None
    polls: int
    created_at: datetime
    updated_at: datetime
    phases: dict[str, datetime]
    error: str | None
    error_code: str | None
    decision: Decision | None
    step_failures: int = Field(default=0, description="failed tries of the current step")
    last_error: str | None = Field(
        default=None, description="the last transient error while the run retries"
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="when the run's next try is due while it retries"
    )
    failure_class: str | None = Field(
        default=None,
        description="of a failed or cancelled run: its error code and, when its message "
        "starts with one, the remote error code (e.g. bes_Failed/BlobNotFound)",
    )
    failure_shape: str | None = Field(
        default=None,
        description="of a failed or cancelled run: its message with ids, numbers, paths, "
        "URLs and quoted names replaced by placeholders, so like failures group together",
    )


class BatchRuns(BaseModel):
    """One page of a batch's runs in creation order."""

    batch_id: str
    items: list[RunBrief]
    total: int
    offset: int
    limit: int
    next_offset: int | None
