"""Settings that point retrainq at an emulator, read from the emulator's ``/_emulator/config``.

The emulator declares workspaces, training web services (with BES endpoints and keys), and an
ARM subscription; this module turns that into the ``RETRAINQ_*`` variables of the worker and
API, so the local stack, tests and benchmarks configure themselves the way an operator would
configure real endpoints.
"""

from __future__ import annotations

import json
from typing import Any

# Training services by the model they train; "default" is what a tenant gets unless it says.
SERVICE_NAMES = {"bike-rental": "default", "churn": "churn"}


def training_services(config: dict[str, Any], base_url: str) -> dict[str, dict[str, Any]]:
    """``training_services`` settings for every training web service of the first workspace."""
    workspace = config["workspaces"][0]
    services: dict[str, dict[str, Any]] = {}
    for service in workspace["web_services"]:
        if service["kind"] != "training":
            continue
        endpoints = [
            {
                "url": f"{base_url}/workspaces/{workspace['id']}/services/{endpoint['id']}",
                "api_key": endpoint["primary_key"],
                "max_concurrent_jobs": endpoint.get("max_concurrent_jobs", 40),
            }
            for endpoint in service["endpoints"]
        ]
        name = SERVICE_NAMES.get(service["model"], service["model"])
        services[name] = {
            "endpoints": endpoints,
            "max_running": sum(e["max_concurrent_jobs"] for e in endpoints),
            "columns": required_columns(config, service["model"]),
        }
    return services


def required_columns(config: dict[str, Any], model: str) -> list[str]:
    """The CSV columns a model of the emulator trains on: its base features and its label."""
    spec = next(m for m in config["models"] if m["name"] == model)
    columns: list[str] = []
    for feature in [*spec["numeric_features"], *spec["categorical_features"]]:
        for part in str(feature).split("*"):
            if part not in columns:
                columns.append(part)
    return [*columns, spec["label"]]


def predictive_service_ids(config: dict[str, Any]) -> dict[str, str]:
    """Ids of the classic predictive web services by model (targets of classic tenants)."""
    workspace = config["workspaces"][0]
    return {
        service["model"]: service["id"]
        for service in workspace["web_services"]
        if service["kind"] == "predictive"
    }


def worker_env(config: dict[str, Any], base_url: str) -> dict[str, str]:
    """Environment variables that configure a worker (and API) for this emulator."""
    workspace = config["workspaces"][0]
    arm = config["arm"]
    return {
        "RETRAINQ_TRAINING_SERVICES": json.dumps(training_services(config, base_url)),
        "RETRAINQ_AZUREML__MANAGEMENT_URL": base_url,
        "RETRAINQ_AZUREML__ARM_URL": base_url,
        "RETRAINQ_AZUREML__WORKSPACE_ID": workspace["id"],
        "RETRAINQ_AZUREML__WORKSPACE_TOKEN": workspace["authorization_token"],
        "RETRAINQ_AZUREML__SUBSCRIPTION_ID": arm["subscription_id"],
        "RETRAINQ_AZUREML__RESOURCE_GROUP": arm["resource_groups"][0],
        "RETRAINQ_AZUREML__ARM_TOKEN": arm["token"],
    }
