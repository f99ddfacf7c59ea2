"""Settings shared by every retrainq component, and the worker's own settings.

One ``Settings`` class per component, all on ``RetrainqSettings``: environment variables use
the ``RETRAINQ_`` prefix and ``__`` for nesting (``RETRAINQ_REDIS__URL``), a ``.env`` file is
read when present, and every secret is a ``SecretStr``. Settings are built once in an entry
point and passed down; nothing below the entry points reads ``os.environ``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.datapaths import validate_shared_prefix

LogFormat = Literal["auto", "json", "console"]


class RedisConfig(BaseModel):
    """Where Redis lives; the URL may carry a password, so it is a secret."""

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    prefix: str = Field(default="retrainq", pattern=r"^[a-z0-9_-]{1,32}$")
    queue_name: str = "retrainq:queue"


class BlobConfig(BaseModel):
    """Blob storage holding training data, models and evaluation CSVs."""

    connection_string: SecretStr = SecretStr("UseDevelopmentStorage=true")
    container: str = Field(default="retrainq", pattern=r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
    sas_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)


class LogConfig(BaseModel):
    """How log lines are rendered."""

    format: LogFormat = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class BesEndpointConfig(BaseModel):
    """One BES endpoint of a training web service: its runtime base and API key."""

    url: str
    api_key: SecretStr
    max_concurrent_jobs: int = Field(default=40, ge=1, le=1000)


_ARM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,89}$"
_ASSET = r"^(/subscriptions/\S+|azureml://\S+|[A-Za-z0-9][A-Za-z0-9_.-]{0,254}/versions/[A-Za-z0-9_.-]{1,64})$"
DEFAULT_V2_COMMAND = (
    "python train.py --kind ${{inputs.kind}} --data ${{inputs.train}} "
    "--model ${{outputs.model}} --evaluation ${{outputs.evaluation}}"
)


class BucketBudget(BaseModel):
    """One ARM token bucket as documented, and how much of it the worker leaves to others."""

    capacity: int = Field(ge=1, le=1_000_000)
    per_second: float = Field(ge=0, le=1_000_000)
    reserve: int = Field(
        default=0, ge=0, description="tokens left to the principal's other callers"
    )


class ArmBudgetConfig(BaseModel):
    """The ARM request budget of the worker's principal in a subscription (PROTOCOL-V2 §5.2).

    Services in one subscription share one budget, configured by the first of them.
    """

    reads: BucketBudget = BucketBudget(capacity=250, per_second=25, reserve=25)
    writes: BucketBudget = BucketBudget(capacity=200, per_second=10, reserve=10)
    deletes: BucketBudget = BucketBudget(capacity=200, per_second=10, reserve=10)
    max_wait_seconds: float = Field(
        default=1.0, ge=0, le=60, description="longest a call waits for budget before failing"
    )


class AzureMLV2Config(BaseModel):
    """The Azure ML v2 workspace where a training service of backend ``azureml_v2`` runs jobs.

    ARM authentication is the worker's (``azureml.arm_auth``); nothing here is a secret.
    ``code`` and ``environment`` are ``name/versions/N`` in the workspace or full asset ids.
    """

    arm_url: str | None = Field(default=None, description="ARM base; unset: azureml.arm_url")
    subscription_id: str = Field(pattern=_ARM_NAME)
    resource_group: str = Field(pattern=_ARM_NAME)
    workspace: str = Field(pattern=_ARM_NAME)
    api_version: str = Field(default="2025-12-01", pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")
    compute: str = Field(pattern=_ARM_NAME)
    environment: str = Field(pattern=_ASSET)
    code: str = Field(pattern=_ASSET)
    datastore: str = Field(
        default="workspaceblobstore",
        pattern=r"^[A-Za-z0-9_]{1,255}$",
        description="datastore on the blob container the worker uses (data, models, evaluations)",
    )
    model_kind: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the job's literal input 'kind'"
    )
    experiment: str = Field(default="retrainq", pattern=_ARM_NAME)
    command: str = Field(default=DEFAULT_V2_COMMAND, min_length=1, max_length=4000)
    job_timeout_seconds: int = Field(default=3600, ge=60, le=21 * 24 * 3600)
    max_concurrent_jobs: int = Field(
        default=320, ge=1, le=1000, description="jobs running at once in the workspace"
    )
    poll_by_list: bool = Field(
        default=True, description="read job states from tag-filtered lists, not one GET each"
    )
    poll_group_minutes: int = Field(
        default=10,
        ge=1,
        le=24 * 60,
        description="jobs submitted in one window of this many minutes share a poll tag",
    )
    list_fresh_seconds: float = Field(
        default=10.0, ge=0, le=600, description="how long one listing answers status reads"
    )
    arm_budget: ArmBudgetConfig = ArmBudgetConfig()
    metrics_source: Literal["mlflow", "evaluation"] = Field(
        default="mlflow",
        description="the gate's metrics: the job's MLflow run (the evaluation output when it "
        "has none), or the evaluation output only",
    )

    def workspace_path(self) -> str:
        """The workspace's ARM resource id."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )


def default_interactive_reserve(max_running: int) -> int:
    """Slots kept for interactive runs unless a service says: one per 40 of ``max_running``,
    at least one, so that an onboarding during a bulk retrain need not wait for a bulk job
    to end; none when the service has a single slot (bulk needs one)."""
    return max(1, max_running // 40) if max_running > 1 else 0


class V2PoolConfig(BaseModel):
    """A serving pool: one managed online endpoint whose deployment runs the pooled scorer
    (``deploy/azureml-v2/``) for up to ``capacity`` tenants of one azureml_v2 service."""

    service: str = Field(description="the azureml_v2 training service whose workspace serves")
    endpoint: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
    deployment: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
    scorer_version: str = Field(default="1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    capacity: int = Field(default=1000, ge=1, le=1_000_000, description="tenants at most")
    verify_rows: int = Field(
        default=3, ge=1, le=100, description="tenant rows scored to check a deploy"
    )


class TrainingServiceConfig(BaseModel):
    """A training service: its backend, BES endpoints (classic), fleet-wide cap and port names.

    A service of backend ``azureml_v2`` has no BES endpoints: its one slot pool is the
    workspace (filled in here, capped by ``azureml_v2.max_concurrent_jobs``).
    """

    backend: Literal["classic", "azureml_v2"] = "classic"
    azureml_v2: AzureMLV2Config | None = None
    endpoints: list[BesEndpointConfig] = Field(default_factory=list, max_length=64)
    max_running: int = Field(default=40, ge=1, le=100_000)
    interactive_reserve: int = Field(
        default=0,
        ge=0,
        description="slots of max_running only the interactive lane may take (onboarding "
        "and single retrains start at once during a bulk retrain; bulk gets the rest); "
        "unset: one per 40 of max_running, at least one, none when max_running is 1",
    )
    input_name: str = "input1"
    model_output: str = "output1"
    evaluation_output: str = "output2"
    data_parameter: str | None = Field(
        default=None, description="GlobalParameter carrying the data URL instead of an input"
    )
    columns: list[str] = Field(
        default_factory=list,
        max_length=4096,
        description="columns a training CSV must have (checked on upload); empty: any",
    )
    label_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the label column of its data (the holdout gate measures against it; "
        "unset: a tenant's gate.holdout.label must name it, else holdout mode falls back)",
    )

    @model_validator(mode="after")
    def _backend_has_its_settings(self) -> TrainingServiceConfig:
        v2 = self.azureml_v2
        if self.backend == "classic":
            if v2 is not None:
                raise ValueError("azureml_v2 settings need backend 'azureml_v2'")
            return self
        if v2 is None:
            raise ValueError("backend 'azureml_v2' needs the azureml_v2 settings")
        if self.data_parameter is not None:
            raise ValueError("an azureml_v2 service takes its data as a job input, not a parameter")
        if len(self.endpoints) > 1:
            raise ValueError(
                "an azureml_v2 service has no BES endpoints (its slots: the workspace)"
            )
        if not self.endpoints:
            workspace = BesEndpointConfig(
                url=(v2.arm_url or "").rstrip("/") + v2.workspace_path(),
                api_key=SecretStr(""),
                max_concurrent_jobs=v2.max_concurrent_jobs,
            )
            self.endpoints = [workspace]
        return self

    @model_validator(mode="after")
    def _reserve_leaves_bulk_a_slot(self) -> TrainingServiceConfig:
        if "interactive_reserve" not in self.model_fields_set:
            self.interactive_reserve = default_interactive_reserve(self.max_running)
        if self.interactive_reserve >= self.max_running:
            raise ValueError(
                f"interactive_reserve ({self.interactive_reserve}) must be below max_running "
                f"({self.max_running}): bulk runs would never start"
            )
        return self


class RetrainqSettings(BaseSettings):
    """Base of every component's settings: Redis, blob storage and logging."""

    model_config = SettingsConfigDict(
        env_prefix="RETRAINQ_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    redis: RedisConfig = RedisConfig()
    blob: BlobConfig = BlobConfig()
    log: LogConfig = LogConfig()
    training_services: dict[str, TrainingServiceConfig] = Field(default_factory=dict)
    run_timeout_seconds: int = Field(
        default=6 * 3600, ge=5, description="a run not ended this long after creation fails"
    )
    shared_data_prefixes: list[Annotated[str, AfterValidator(validate_shared_prefix)]] = Field(
        default_factory=list,
        max_length=32,
        description="blob prefixes (ending '/') admins may point any tenant's data_path at",
    )
    bulk_order: Literal["longest_first", "fifo"] = Field(
        default="longest_first",
        description="order of the bulk lane: longest expected BES job first (from each "
        "tenant's recent jobs, worker/bulk_order.py), or fifo (by age)",
    )
    v2_pools: dict[str, V2PoolConfig] = Field(
        default_factory=dict,
        description="Azure ML v2 serving pools by name (tenants of target kind v2_pool); "
        "each pool's service is an azureml_v2 training service",
    )

    @model_validator(mode="after")
    def _pools_serve_from_v2_services(self) -> RetrainqSettings:
        for name, pool in self.v2_pools.items():
            if not (
                name[:1].isalnum()
                and len(name) <= 64
                and name.isascii()
                and all(c.isalnum() or c in "-_" for c in name)
            ):
                raise ValueError(f"v2_pools: {name!r} is no pool name (letters, digits, - and _)")
            service = self.training_services.get(pool.service)
            if service is None or service.backend != "azureml_v2":
                raise ValueError(
                    f"v2_pools.{name}.service: {pool.service!r} is not an azureml_v2 training "
                    "service"
                )
        return self


class AzureMLConfig(BaseModel):
    """Base URLs and credentials of the Azure ML (classic) surfaces the worker calls."""

    management_url: str = "https://management.azureml.net"
    arm_url: str = "https://management.azure.com"
    workspace_id: str = "00000000000000000000000000000000"
    workspace_token: SecretStr = SecretStr("")
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "retrainq"
    arm_token: SecretStr = SecretStr("")
    arm_auth: Literal["static", "azure_identity"] = Field(
        default="static",
        description="static: send arm_token; azure_identity: DefaultAzureCredential tokens",
    )
    request_timeout_seconds: float = Field(default=5.0, gt=0, le=120)


class ArchiveConfig(BaseModel):
    """Run retention in Redis and the archiver that moves older runs to blob storage."""

    enabled: bool = Field(default=True, description="run the archiver's periodic pass")
    interval_seconds: float = Field(default=300.0, ge=1, le=86400)
    lease_seconds: float = Field(default=120.0, ge=5, le=3600)
    keep_runs: int = Field(
        default=50, ge=1, le=100_000, description="finished runs per tenant always kept"
    )
    keep_days: float = Field(
        default=30.0, ge=0, le=3650, description="finished runs younger than this are kept"
    )
    keep_deployed: int = Field(
        default=5, ge=1, le=1000, description="deployed versions per tenant whose runs are kept"
    )
    max_runs_per_pass: int = Field(default=5000, ge=1, le=1_000_000)
    min_part_runs: int = Field(
        default=7,
        ge=1,
        le=10_000,
        description="a tenant's runs past retention wait until there are this many, so that "
        "each archive part (and its one index entry) holds several runs",
    )
    offboarded_grace_days: float = Field(
        default=30.0,
        ge=0,
        le=3650,
        description="an offboarded tenant's runs, model history and record move to the "
        "archive this long after offboarding",
    )


class ScoringConfig(BaseModel):
    """BES scoring of holdout rows on tenants' predictive web services (the holdout gate)."""

    max_running: int = Field(
        default=20, ge=1, le=10_000, description="scoring jobs running at once per web service"
    )
    service_caps: dict[str, int] = Field(
        default_factory=dict, description="web service id -> its own cap (else max_running)"
    )
    lease_seconds: float = Field(default=300.0, ge=10, le=3600)
    input_name: str = "input1"
    output_name: str = "output1"
    poll_seconds: float = Field(default=1.0, gt=0, le=300)
    slot_wait_seconds: float = Field(default=2.0, gt=0, le=300)
    staging_settle_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="wait after PATCHing the staging endpoint before scoring on it (Azure "
        "serves a PATCHed model about 30 s later and has no status API for it)",
    )
    max_scored_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


class WorkerSettings(RetrainqSettings):
    """Settings of ``retrainq-worker``."""

    max_jobs: int = Field(default=200, ge=1, le=5000)
    job_timeout_seconds: int = Field(default=12, ge=5, le=600)
    poll_min_seconds: float = Field(default=0.5, gt=0, le=60)
    poll_max_seconds: float = Field(default=90.0, gt=0, le=600)
    lease_seconds: int = Field(default=300, ge=10, le=3600)
    poll_sweeper: bool = Field(
        default=True,
        description="poll running BES jobs from one sweeper loop per worker (false: one "
        "deferred arq job per poll)",
    )
    sweep_batch: int = Field(default=256, ge=1, le=5000)
    sweep_concurrency: int = Field(default=64, ge=1, le=1000)
    heartbeat_seconds: float = Field(
        default=2.0,
        ge=0.2,
        le=60,
        description="how often a worker renews its heartbeat; one that misses three in a row "
        "is taken for dead and its steps and claims are released to the others",
    )
    sweep_claim_seconds: float = Field(default=20.0, ge=1, le=300)
    step_max_failures: int = Field(default=8, ge=1, le=100)
    bulk_every: int = Field(default=5, ge=0, le=1000)
    reconcile_grace_seconds: float = Field(default=5.0, ge=0.5, le=600)
    throttle_pause_seconds: float = Field(default=5.0, ge=0.1, le=600)
    health_port: int = Field(default=9100, ge=0, le=65535)
    health_check_interval_seconds: int = Field(default=10, ge=1)
    pod_name: str = "worker"
    failpoints: list[str] = Field(default_factory=list, max_length=16)  # chaos tests only
    azureml: AzureMLConfig = AzureMLConfig()
    archive: ArchiveConfig = ArchiveConfig()
    scoring: ScoringConfig = ScoringConfig()

    @model_validator(mode="after")
    def _polls_renew_leases_in_time(self) -> WorkerSettings:
        if self.poll_min_seconds > self.poll_max_seconds:
            raise ValueError(
                f"poll_min_seconds ({self.poll_min_seconds:g}) must not exceed "
                f"poll_max_seconds ({self.poll_max_seconds:g})"
            )
        if self.lease_seconds < 2 * self.poll_max_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds}) must be at least twice "
                f"poll_max_seconds ({self.poll_max_seconds:g}): each poll renews a BES slot's "
                "lease, and a lease that expires between polls hands the slot out twice"
            )
        return self


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each invalid field: ``id: String should match pattern '...'; ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        problems.append(f"{path}: {error['msg']}" if path else error["msg"])
    return f"invalid {exc.title}: {'; '.join(problems)}"
