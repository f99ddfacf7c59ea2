"""In-memory state of the emulator: workspaces, services, endpoints, jobs, ARM services, stats.

``EmulatorState`` is built from an ``EmulatorConfig`` and rebuilt by ``reset``. A ``Runtime``
is what one runtime base (a classic endpoint's ``ApiLocation`` or a new service's base)
serves: its keys, model spec, current model, BES job slots and RRS limits.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from emulator.blobio import BlobRef, BlobStore
from emulator.config import (
    EmulatorConfig,
    EndpointConfig,
    RuntimeSettings,
    WebServiceConfig,
    derived_id,
)
from emulator.faults import Faults
from emulator.training import Model, ModelSpec

JobStatus = Literal["NotStarted", "Running", "Failed", "Cancelled", "Finished"]
ProvisioningState = Literal["Unknown", "Provisioning", "Succeeded", "Failed"]


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 with a ``Z`` suffix, as Azure answers."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class JobCounters:
    """BES job counts of one web service (all its endpoints together)."""

    created: int = 0
    started: int = 0
    finished: int = 0
    failed: int = 0
    cancelled: int = 0
    running_now: int = 0
    waiting_now: int = 0
    max_concurrent_running: int = 0
    started_by_output: dict[str, int] = field(default_factory=dict)
    planned_seconds_by_output: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Counts as JSON; ``started_jobs_by_output`` maps output1 locations to start counts,
        ``planned_seconds_by_output`` to the duration drawn for their last job (when
        ``job_durations`` is on)."""
        return {
            "jobs_created": self.created,
            "jobs_started": self.started,
            "jobs_finished": self.finished,
            "jobs_failed": self.failed,
            "jobs_cancelled": self.cancelled,
            "running_now": self.running_now,
            "waiting_now": self.waiting_now,
            "max_concurrent_running": self.max_concurrent_running,
            "started_jobs_by_output": dict(self.started_by_output),
            "planned_seconds_by_output": dict(self.planned_seconds_by_output),
        }


@dataclass
class Runtime:
    """What one runtime base serves (BES jobs and RRS scoring).

    ``unserved`` says why a predictive runtime has no model when none will come by itself (its
    spec names no initial data); ``None`` while a model may still arrive (ARM provisioning).
    """

    label: str
    kind: Literal["training", "predictive"]
    keys: tuple[str, str]
    spec: ModelSpec
    model: Model | None
    jobs: JobCounters
    max_concurrent_jobs: int
    max_concurrent_calls: int
    data_uri_parameters: list[str]
    slots: asyncio.Semaphore
    rrs_calls: int = 0
    rrs_in_flight: int = 0
    unserved: str | None = None

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries one of this runtime's keys."""
        return any(bearer_matches(header, key) for key in self.keys if key)

    def no_model_message(self) -> str:
        """Why this runtime scores nothing while it has no model."""
        return self.unserved or f"{self.label} has no trained model yet."


def bearer_matches(header: str | None, secret: str) -> bool:
    """Whether ``header`` is ``Bearer <secret>`` (constant-time compare)."""
    if not header or not secret:
        return False
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), secret)


@dataclass
class Endpoint:
    """An endpoint of a classic web service."""

    service: WebService
    name: str
    id: str
    primary_key: str
    secondary_key: str
    description: str
    throttle_level: str
    created: datetime
    runtime: Runtime
    resource_location: dict[str, str] | None = None
    patches: int = 0
    refreshes: int = 0

    @property
    def max_concurrent_calls(self) -> int:
        """Concurrent RRS calls allowed (ThrottleLevel Low fixes it at 4)."""
        return self.runtime.max_concurrent_calls


@dataclass
class WebService:
    """A classic web service and its endpoints (``default`` first)."""

    workspace: Workspace
    id: str
    name: str
    kind: Literal["training", "predictive"]
    spec: ModelSpec
    max_endpoints: int
    data_uri_parameters: list[str]
    created: datetime
    jobs: JobCounters = field(default_factory=JobCounters)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)


@dataclass
class Workspace:
    """A classic workspace."""

    id: str
    name: str
    region: str
    tokens: tuple[str, str]
    services: dict[str, WebService] = field(default_factory=dict)


@dataclass
class Operation:
    """An ARM long-running operation behind an ``Azure-AsyncOperation`` URL."""

    id: str
    status: Literal["InProgress", "Succeeded", "Failed", "Canceled"] = "InProgress"
    error: dict[str, str] | None = None
    start: datetime = field(default_factory=utcnow)
    end: datetime | None = None


@dataclass
class ArmService:
    """A new (ARM) web service."""

    subscription_id: str
    resource_group: str
    name: str
    service_id: str
    location: str
    tags: dict[str, Any]
    properties: dict[str, Any]
    runtime: Runtime
    provisioning_state: ProvisioningState = "Succeeded"
    created: datetime = field(default_factory=utcnow)
    puts: int = 0
    patches: int = 0
    operation: Operation | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class Job:
    """One BES job; ``model`` is what a scoring job scores with (taken when it starts)."""

    id: str
    runtime: Runtime
    inputs: dict[str, BlobRef]
    outputs: dict[str, BlobRef]
    data_url: str | None
    status: JobStatus = "NotStarted"
    details: str | None = None
    created: datetime = field(default_factory=utcnow)
    starts: int = 0
    model: Model | None = None
    task: asyncio.Task[None] | None = None


def unserved_message(spec: ModelSpec, where: str) -> str:
    """What a predictive runtime without a model answers: why, and how it gets one."""
    return (
        f"{where} serves no trained model: model spec {spec.name!r} names no initial data "
        "(initial_data or datagen), so its endpoints start without one. PATCH an added "
        "endpoint (or PUT a new web service) with a trained model first."
    )


class EmulatorState:
    """Everything the emulator holds; handlers reach it through the app."""

    def __init__(
        self, config: EmulatorConfig, base_url: str, seed: int, initial_models: dict[str, Model]
    ) -> None:
        self.config = config
        self.base_url = base_url
        self.seed = seed
        self.initial_models = initial_models
        self.tasks: set[asyncio.Task[Any]] = set()
        self.faults = Faults(config.faults, seed)
        self._build()

    def _build(self) -> None:
        self.settings = RuntimeSettings.model_validate(self.config.settings.model_dump())
        self.faults.configure(self.config.faults)
        self.workspaces: dict[str, Workspace] = {}
        self.endpoints_by_id: dict[str, Endpoint] = {}
        self.jobs: dict[str, Job] = {}
        self.arm_services: dict[tuple[str, str], ArmService] = {}
        self.arm_by_service_id: dict[str, ArmService] = {}
        self.operations: dict[str, Operation] = {}
        self.rrs_calls = 0
        for ws_config in self.config.workspaces:
            workspace = Workspace(
                id=ws_config.id,
                name=ws_config.name,
                region=ws_config.region,
                tokens=(ws_config.authorization_token, ws_config.secondary_token),
            )
            self.workspaces[workspace.id] = workspace
            for svc_config in ws_config.web_services:
                self._add_service(workspace, svc_config)

    def _add_service(self, workspace: Workspace, cfg: WebServiceConfig) -> None:
        spec = self.config.spec(cfg.model)
        service = WebService(
            workspace=workspace,
            id=cfg.id,
            name=cfg.name,
            kind=cfg.kind,
            spec=spec,
            max_endpoints=cfg.max_endpoints,
            data_uri_parameters=list(cfg.data_uri_parameters),
            created=utcnow(),
        )
        workspace.services[service.id] = service
        for endpoint_cfg in cfg.endpoints:
            self.add_endpoint(service, endpoint_cfg)

    def initial_model(self, service: WebService) -> Model | None:
        """The model a predictive service's endpoints start with (None for training)."""
        if service.kind != "predictive":
            return None
        return self.initial_models.get(service.spec.name)

    def initial_location(self, spec: ModelSpec) -> dict[str, str]:
        """Where the initial model of ``spec`` is served (a Resources ``Location``)."""
        return {
            "BaseLocation": f"{self.base_url}/",
            "RelativeLocation": f"_emulator/models/{spec.name}.ilearner",
            "SasBlobToken": "",
        }

    def add_endpoint(self, service: WebService, cfg: EndpointConfig) -> Endpoint:
        """Create an endpoint of ``service`` (it starts with the default endpoint's model)."""
        default = service.endpoints.get("default")
        model = default.runtime.model if default is not None else self.initial_model(service)
        location = default.resource_location if default is not None else None
        if location is None and service.kind == "predictive" and model is not None:
            location = self.initial_location(service.spec)
        calls = 4 if cfg.throttle_level == "Low" else cfg.max_concurrent_calls
        endpoint = Endpoint(
            service=service,
            name=cfg.name,
            id=cfg.id,
            primary_key=cfg.primary_key,
            secondary_key=cfg.secondary_key,
            description=cfg.description,
            throttle_level=cfg.throttle_level,
            created=utcnow(),
            resource_location=dict(location) if location else None,
            runtime=Runtime(
                label=f"{service.name}/{cfg.name}",
                kind=service.kind,
                keys=(cfg.primary_key, cfg.secondary_key),
                spec=service.spec,
                model=model,
                jobs=service.jobs,
                max_concurrent_jobs=cfg.max_concurrent_jobs,
                max_concurrent_calls=calls,
                data_uri_parameters=service.data_uri_parameters,
                slots=asyncio.Semaphore(cfg.max_concurrent_jobs),
                unserved=unserved_message(service.spec, f"{service.name}/{cfg.name}")
                if service.kind == "predictive"
                else None,
            ),
        )
        service.endpoints[endpoint.name] = endpoint
        self.endpoints_by_id[endpoint.id] = endpoint
        return endpoint

    def remove_endpoint(self, endpoint: Endpoint) -> None:
        """Delete an added endpoint."""
        del endpoint.service.endpoints[endpoint.name]
        self.endpoints_by_id.pop(endpoint.id, None)

    def endpoint_id_for(self, service: WebService, name: str) -> str:
        """The runtime id an added endpoint gets (stable per service and name)."""
        return derived_id(f"{service.name}/{name}")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a tracked task (cancelled on reset and shutdown)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        """Cancel every tracked task and wait for them."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Back to the configured classic state (the caller reinstalls ARM services)."""
        await self.cancel_tasks()
        self._build()

    def find_runtime(self, workspace_id: str, endpoint_id: str) -> Runtime | None:
        """The runtime of a classic endpoint by workspace and endpoint id."""
        endpoint = self.endpoints_by_id.get(endpoint_id.lower())
        if endpoint is None or endpoint.service.workspace.id != workspace_id.lower():
            return None
        return endpoint.runtime

    def find_arm_runtime(self, subscription_id: str, service_id: str) -> Runtime | None:
        """The runtime of a new web service by subscription and service id."""
        service = self.arm_by_service_id.get(service_id.lower())
        if service is None or service.subscription_id.lower() != subscription_id.lower():
            return None
        return service.runtime

    def stats(self) -> dict[str, Any]:
        """Counters for ``/_emulator/stats``."""
        services: dict[str, Any] = {}
        for workspace in self.workspaces.values():
            for service in workspace.services.values():
                services[service.name] = {
                    "id": service.id,
                    "kind": service.kind,
                    **service.jobs.to_dict(),
                    "endpoints": {
                        e.name: {
                            "id": e.id,
                            "patches": e.patches,
                            "refreshes": e.refreshes,
                            "rrs_calls": e.runtime.rrs_calls,
                        }
                        for e in service.endpoints.values()
                    },
                }
        arm = {
            f"{s.resource_group}/{s.name}": {
                "service_id": s.service_id,
                "provisioning_state": s.provisioning_state,
                "puts": s.puts,
                "patches": s.patches,
                "rrs_calls": s.runtime.rrs_calls,
                **s.runtime.jobs.to_dict(),
            }
            for s in self.arm_services.values()
        }
        return {
            "web_services": services,
            "arm_web_services": arm,
            "rrs_calls": self.rrs_calls,
            "jobs_total": len(self.jobs),
            "faults": self.faults.snapshot(),
        }


STATE = web.AppKey("state", EmulatorState)
BLOBS = web.AppKey("blobs", BlobStore)
