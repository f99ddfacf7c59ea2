"""Builds the Azure ML v2 adapters of a worker from its settings (no I/O): the training
backend of its v2 services and the deploy targets of its serving pools.

Clients of services in one subscription, on one ARM base, share one ``ArmBudget``: ARM
throttles the principal per subscription, so they spend from the same buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from worker.azureml.arm import TokenProvider
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.budget import ArmBudget
from worker.azureml_v2.jobs import JobsClient
from worker.azureml_v2.mlflow import MlflowClient
from worker.azureml_v2.pool import PoolEndpoint, PoolTarget
from worker.azureml_v2.registry import ModelRegistry, ModelsClient
from worker.azureml_v2.training import AzureMLV2Training
from worker.blobs import BlobStore
from worker.run.ports import TrainingBackend
from worker.settings import AzureMLV2Config, WorkerSettings


def v2_services(settings: WorkerSettings) -> dict[str, AzureMLV2Config]:
    """The ``azureml_v2`` settings of each v2 training service, by service name."""
    return {
        name: service.azureml_v2
        for name, service in settings.training_services.items()
        if service.azureml_v2 is not None
    }


def arm_url_of(settings: WorkerSettings, config: AzureMLV2Config) -> str:
    """The ARM base a v2 service is reached at (its own, else the worker's)."""
    return (config.arm_url or settings.azureml.arm_url).rstrip("/")


def budgets(
    settings: WorkerSettings, services: Sequence[AzureMLV2Config]
) -> dict[tuple[str, str], ArmBudget]:
    """One budget per (ARM base, subscription), configured by its first service."""
    shared: dict[tuple[str, str], ArmBudget] = {}
    for config in services:
        key = (arm_url_of(settings, config), config.subscription_id.lower())
        shared.setdefault(key, ArmBudget(config.arm_budget))
    return shared


@dataclass
class V2Wiring:
    """What a worker's v2 adapters are built from; they all spend from one ARM budget per
    (ARM base, subscription)."""

    settings: WorkerSettings
    session: aiohttp.ClientSession
    blobs: BlobStore
    arm_token: TokenProvider
    policy: RetryPolicy
    services: dict[str, AzureMLV2Config] = field(init=False)
    shared: dict[tuple[str, str], ArmBudget] = field(init=False)

    def __post_init__(self) -> None:
        self.services = v2_services(self.settings)
        self.shared = budgets(self.settings, list(self.services.values()))

    @property
    def timeout(self) -> float:
        """Seconds of each remote call."""
        return self.settings.azureml.request_timeout_seconds

    def budget(self, config: AzureMLV2Config) -> ArmBudget:
        """The budget of the service's subscription."""
        return self.shared[(arm_url_of(self.settings, config), config.subscription_id.lower())]

    def arm(self, config: AzureMLV2Config) -> V2Arm:
        """ARM calls on the service's base, spending from its subscription's budget."""
        arm_url = arm_url_of(self.settings, config)
        return V2Arm(
            self.session,
            arm_url,
            self.arm_token,
            self.policy,
            self.budget(config),
            timeout_seconds=self.timeout,
        )

    def training(self) -> dict[str, TrainingBackend]:
        """The training backend of every v2 service (one adapter serves them all)."""
        if not self.services:
            return {}
        clients: dict[str, JobsClient] = {}
        tracking: dict[str, MlflowClient] = {}
        for name, config in self.services.items():
            arm_url = arm_url_of(self.settings, config)
            clients[name] = JobsClient(
                self.session,
                arm_url,
                config.workspace_path(),
                self.arm_token,
                self.policy,
                api_version=config.api_version,
                timeout_seconds=self.timeout,
                budget=self.budget(config),
            )
            workspace = arm_url + config.workspace_path()
            tracking[name] = MlflowClient(self.arm(config), workspace, config.api_version)
        training = AzureMLV2Training(
            clients, self.services, self.blobs, self.settings.shared_data_prefixes, mlflow=tracking
        )
        return {name: training for name in self.services}

    def pools(self) -> dict[str, PoolTarget]:
        """The deploy target of every configured serving pool, by pool name."""
        targets: dict[str, PoolTarget] = {}
        for name, pool in self.settings.v2_pools.items():
            config = self.services[pool.service]  # the settings checked it is a v2 service
            arm = self.arm(config)
            workspace = arm_url_of(self.settings, config) + config.workspace_path()
            registry = ModelRegistry(ModelsClient(arm, workspace, config.api_version), config)
            endpoint = PoolEndpoint(arm, workspace, config.api_version, pool)
            targets[name] = PoolTarget(name, pool, registry, endpoint, self.blobs)
        return targets
