"""Settings that point retrainq at an emulator, read from the emulator's ``/_emulator/config``.

The emulator declares workspaces, training web services (with BES endpoints and keys), and an
ARM subscription; this module turns that into the ``RETRAINQ_*`` variables of the worker and
API, so the local stack, tests and benchmarks configure themselves the way an operator would
configure real endpoints.
"""

from __future__ import annotations

import json
import re
from typing import Any

DEFAULT_SERVICE = "default"


def service_name(web_service: dict[str, Any], taken: dict[str, Any]) -> str:
    """The retrainq name of a training web service: the first one is ``default`` (what a
    tenant gets unless it says), each other is named after its model spec, or after the web
    service when another service trains that spec too."""
    if not taken:
        return DEFAULT_SERVICE
    candidates = [
        str(web_service["model"]),
        re.sub(r"[^a-z0-9]+", "-", str(web_service["name"]).lower()).strip("-") or "training",
    ]
    for name in candidates:
        if name not in taken:
            return name
    index = 2
    while f"{candidates[1]}-{index}" in taken:
        index += 1
    return f"{candidates[1]}-{index}"


def training_services(config: dict[str, Any], base_url: str) -> dict[str, dict[str, Any]]:
    """``training_services`` settings, one for every training web service of the first
    workspace (named by ``service_name``), whatever model specs the emulator declares; each
    names its spec's label, so tenants onboarded through the API are judged in holdout
    mode."""
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
        services[service_name(service, services)] = {
            "endpoints": endpoints,
            "max_running": sum(e["max_concurrent_jobs"] for e in endpoints),
            "columns": required_columns(config, service["model"]),
            # The holdout gate measures both models against this column.
            "label_column": str(model_spec(config, service["model"])["label"]),
        }
    return services


def model_spec(config: dict[str, Any], model: str) -> dict[str, Any]:
    """The emulator's model spec called ``model``."""
    spec: dict[str, Any] = next(m for m in config["models"] if m["name"] == model)
    return spec


def required_columns(config: dict[str, Any], model: str) -> list[str]:
    """The CSV columns a model of the emulator trains on: its base features and its label."""
    spec = model_spec(config, model)
    columns: list[str] = []
    for feature in [*spec["numeric_features"], *spec.get("categorical_features", [])]:
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
        # The emulator serves a PATCHed model at once (Azure about 30 s later): no wait
        # before scoring on a staging endpoint.
        "RETRAINQ_SCORING__STAGING_SETTLE_SECONDS": "0",
    }
