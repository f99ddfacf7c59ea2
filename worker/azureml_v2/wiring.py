"""Builds the Azure ML v2 adapters of a worker from its settings (no I/O).

Clients of services in one subscription, on one ARM base, share one ``ArmBudget``: ARM
throttles the principal per subscription, so they spend from the same buckets.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from worker.azureml.arm import TokenProvider
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.budget import ArmBudget
from worker.azureml_v2.jobs import JobsClient
from worker.azureml_v2.mlflow import MlflowClient
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


def v2_training(
    settings: WorkerSettings,
    session: aiohttp.ClientSession,
    blobs: BlobStore,
    arm_token: TokenProvider,
    policy: RetryPolicy,
) -> dict[str, TrainingBackend]:
    """The training backend of every v2 service (one adapter serves them all)."""
    services = v2_services(settings)
    if not services:
        return {}
    shared = budgets(settings, list(services.values()))
    timeout = settings.azureml.request_timeout_seconds
    clients: dict[str, JobsClient] = {}
    tracking: dict[str, MlflowClient] = {}
    for name, config in services.items():
        arm_url = arm_url_of(settings, config)
        budget = shared[(arm_url, config.subscription_id.lower())]
        clients[name] = JobsClient(
            session,
            arm_url,
            config.workspace_path(),
            arm_token,
            policy,
            api_version=config.api_version,
            timeout_seconds=timeout,
            budget=budget,
        )
        arm = V2Arm(session, arm_url, arm_token, policy, budget, timeout_seconds=timeout)
        tracking[name] = MlflowClient(arm, arm_url + config.workspace_path(), config.api_version)
    training = AzureMLV2Training(
        clients, services, blobs, settings.shared_data_prefixes, mlflow=tracking
    )
    return {name: training for name in services}
