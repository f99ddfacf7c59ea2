"""In-memory state of the Azure ML v2 surfaces: workspaces, datastores, jobs, faults, budgets,
counters.

The v2 surfaces live beside the classic ones on the same address and share their ARM
subscription, resource groups and bearer token (``EmulatorConfig.arm``). ``V2State`` is kept
under its own app key and rebuilt by ``POST /_emulator/v2/reset``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from emulator.config import FaultSpec
from emulator.errors import ApiError
from emulator.faults import SurfaceFaults, job_fails
from emulator.state import utcnow
from emulator.v2.throttle import Throttle, ThrottleConfig

JobStatus = Literal[
    "NotStarted",
    "Queued",
    "Running",
    "Finalizing",
    "CancelRequested",
    "Completed",
    "Failed",
    "Canceled",
]
TERMINAL: frozenset[str] = frozenset({"Completed", "Failed", "Canceled"})
V2Surface = Literal["v2_jobs"]


class V2WorkspaceConfig(BaseModel):
    """A v2 workspace in the first resource group of the ARM config."""

    name: str = Field(default="retrainq-v2", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$")
    location: str = "westeurope"


class V2Config(BaseModel):
    """What the v2 surfaces serve: the workspaces (datastores are PUT at run time)."""

    workspaces: list[V2WorkspaceConfig] = Field(
        default_factory=lambda: [V2WorkspaceConfig()], min_length=1
    )
    throttle: ThrottleConfig = ThrottleConfig()
    list_page_size: int = Field(default=100, ge=1, le=10_000)
    max_endpoints: int = Field(default=100, ge=1, description="online endpoints (quota)")
    max_deployments: int = Field(default=500, ge=1, description="deployments in all (quota)")
    max_deployments_per_endpoint: int = Field(default=20, ge=1)
    scorer_script: str | None = Field(
        default=None,
        description="the pooled scorer that deployments with scoringScript score.py run "
        "(default: deploy/azureml-v2/score.py of this repository)",
    )


class V2Faults(BaseModel):
    """Fault switches of the v2 surfaces (the classic switches' fields) and failed jobs."""

    v2_jobs: FaultSpec = FaultSpec()
    v2_mlflow: FaultSpec = FaultSpec()
    v2_models: FaultSpec = FaultSpec()
    v2_endpoints: FaultSpec = FaultSpec()
    v2_scoring: FaultSpec = FaultSpec()
    deployments_fail_next: int = Field(
        default=0, ge=0, description="deployment PUTs whose provisioning ends Failed"
    )
    job_failure_rate: float = Field(default=0.0, ge=0, le=1)
    jobs_log_no_metrics: bool = Field(
        default=False, description="jobs write the evaluation output but log nothing to MLflow"
    )


@dataclass
class Datastore:
    """An Azure Blob datastore: where ``azureml://datastores/{name}/paths/...`` lives."""

    name: str
    body: dict[str, Any]
    connection_string: str
    container: str


@dataclass
class V2Job:
    """A command job: its stored body, status and the counters of the PUTs of its name."""

    name: str
    workspace: str
    body: dict[str, Any]
    status: JobStatus = "NotStarted"
    created: datetime = field(default_factory=utcnow)
    failure: dict[str, str] | None = None
    puts_created: int = 1
    puts_unchanged: int = 0
    puts_refused: int = 0
    cancels: int = 0
    task: asyncio.Task[None] | None = None
    # What the training script logged to MLflow: key -> (value, timestamp ms, step).
    metrics: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    ended: datetime | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job has ended."""
        return self.status in TERMINAL


@dataclass
class ModelVersion:
    """A registered model version: its stored properties and the PUTs of its name."""

    version: str
    properties: dict[str, Any]
    created: datetime = field(default_factory=utcnow)
    puts_unchanged: int = 0
    puts_refused: int = 0


@dataclass
class ModelContainer:
    """A model container (``models/{name}``), its versions and every tag set it was given."""

    name: str
    workspace: str
    properties: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    created: datetime = field(default_factory=utcnow)
    tag_history: list[dict[str, str]] = field(default_factory=list)


@dataclass
class LongOperation:
    """An endpoint or deployment operation behind ``Azure-AsyncOperation`` / ``Location``."""

    id: str
    status: Literal["InProgress", "Succeeded", "Failed"] = "InProgress"
    error: dict[str, str] | None = None


@dataclass
class OnlineDeployment:
    """A managed online deployment: its body, provisioning state and scoring counters."""

    name: str
    body: dict[str, Any]
    state: str = "Creating"
    scorer: Any = None
    scored: int = 0
    created: datetime = field(default_factory=utcnow)


@dataclass
class OnlineEndpoint:
    """A managed online endpoint: body, keys, provisioning state, deployments, counters."""

    name: str
    workspace: str
    body: dict[str, Any]
    keys: tuple[str, str]
    state: str = "Creating"
    deployments: dict[str, OnlineDeployment] = field(default_factory=dict)
    operations: int = 0
    created: datetime = field(default_factory=utcnow)

    @property
    def busy(self) -> bool:
        """Whether an operation on it (or one of its deployments) is still running."""
        running = ("Creating", "Updating", "Deleting", "Scaling")
        return self.state in running or any(d.state in running for d in self.deployments.values())


@dataclass
class V2Operation:
    """A cancel operation behind a ``Location`` URL: done once its job has ended."""

    id: str
    job: V2Job


class FaultState:
    """Live v2 fault switches (the jobs API, MLflow, models) and the job failure rate."""

    def __init__(self, faults: V2Faults, seed: int) -> None:
        self.seed = seed
        self.configure(faults)

    def configure(self, faults: V2Faults) -> None:
        """Replace every switch; reseed and zero the counters."""
        self.config = faults
        self.jobs = SurfaceFaults(faults.v2_jobs, random.Random(f"{self.seed}:v2_jobs"))
        self.mlflow = SurfaceFaults(faults.v2_mlflow, random.Random(f"{self.seed}:v2_mlflow"))
        self.models = SurfaceFaults(faults.v2_models, random.Random(f"{self.seed}:v2_models"))
        self.endpoints = SurfaceFaults(
            faults.v2_endpoints, random.Random(f"{self.seed}:v2_endpoints")
        )
        self.scoring = SurfaceFaults(faults.v2_scoring, random.Random(f"{self.seed}:v2_scoring"))
        self.deployments_fail = faults.deployments_fail_next
        self.job_random = random.Random(f"{self.seed}:v2_job")
        self.jobs_failed = 0

    async def before(self) -> None:
        """Latency, then the injected error when this call is to fail."""
        await self.jobs.before()

    def take_drop(self) -> bool:
        """Whether this call's reply is dropped after its effect was committed."""
        return self.jobs.take_drop()

    def job_fails(self) -> bool:
        """Whether the job now finishing fails instead."""
        if job_fails(self.config.job_failure_rate, self.job_random):
            self.jobs_failed += 1
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        """Configuration, remaining counters and what was injected."""
        return {
            "config": self.config.model_dump(mode="json"),
            "remaining": self.jobs.remaining(),
            "injected": self.jobs.injected,
            "dropped": self.jobs.dropped,
            "mlflow_injected": self.mlflow.injected,
            "models": {
                "remaining": self.models.remaining(),
                "injected": self.models.injected,
                "dropped": self.models.dropped,
            },
            "jobs_failed": self.jobs_failed,
        }


class V2State:
    """Datastores, jobs and operations of the v2 workspaces."""

    def __init__(self, config: V2Config, seed: int) -> None:
        self.config = config
        self.faults = FaultState(V2Faults(), seed)
        self.datastores: dict[tuple[str, str], Datastore] = {}
        self.jobs: dict[tuple[str, str], V2Job] = {}
        self.operations: dict[str, V2Operation] = {}
        self.models: dict[tuple[str, str], ModelContainer] = {}
        self.endpoints: dict[tuple[str, str], OnlineEndpoint] = {}
        self.lros: dict[str, LongOperation] = {}
        self.throttle = Throttle(config.throttle)
        self.calls: dict[str, int] = {}

    def count(self, what: str) -> None:
        """Count one call of a kind (``job_get``, ``job_list_page``, ...) for the stats."""
        self.calls[what] = self.calls.get(what, 0) + 1

    def workspace(self, name: str) -> V2WorkspaceConfig:
        """The configured workspace ``name`` (case-insensitive), or 404."""
        for workspace in self.config.workspaces:
            if workspace.name.lower() == name.lower():
                return workspace
        raise ApiError(404, "ResourceNotFound", f"Workspace '{name}' was not found.")

    def reset(self) -> None:
        """Forget every datastore, job and operation; cancel running jobs; clear faults."""
        for job in self.jobs.values():
            if job.task is not None:
                job.task.cancel()
        self.datastores.clear()
        self.jobs.clear()
        self.operations.clear()
        self.models.clear()
        self.endpoints.clear()
        self.lros.clear()
        self.faults.configure(V2Faults())
        self.throttle.configure(self.config.throttle)
        self.calls.clear()

    def stats(self) -> dict[str, Any]:
        """Counters for ``/_emulator/v2/stats``: per job name, PUTs by outcome and status."""
        jobs = {
            job.name: {
                "workspace": job.workspace,
                "status": job.status,
                "jobs_created": job.puts_created,
                "puts_unchanged": job.puts_unchanged,
                "puts_refused": job.puts_refused,
                "cancels": job.cancels,
            }
            for job in self.jobs.values()
        }
        by_status: dict[str, int] = {}
        for job in self.jobs.values():
            by_status[job.status] = by_status.get(job.status, 0) + 1
        return {
            "jobs": jobs,
            "jobs_total": len(self.jobs),
            "jobs_by_status": by_status,
            "max_jobs_per_name": max((j.puts_created for j in self.jobs.values()), default=0),
            "faults": self.faults.snapshot(),
            "models": {
                model.name: {
                    "workspace": model.workspace,
                    "tags": dict(model.properties.get("tags") or {}),
                    "tag_history": list(model.tag_history),
                    "versions": {
                        v.version: {
                            "puts_unchanged": v.puts_unchanged,
                            "puts_refused": v.puts_refused,
                        }
                        for v in model.versions.values()
                    },
                }
                for model in self.models.values()
            },
            "endpoints": {
                e.name: {
                    "state": e.state,
                    "operations": e.operations,
                    "traffic": dict(e.body["properties"].get("traffic") or {}),
                    "deployments": {
                        d.name: {"state": d.state, "scored": d.scored}
                        for d in e.deployments.values()
                    },
                }
                for e in self.endpoints.values()
            },
            "calls": dict(self.calls),
            "throttle": self.throttle.snapshot(),
        }


V2_STATE = web.AppKey("v2_state", V2State)
