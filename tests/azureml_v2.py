"""Helpers of the Azure ML v2 tests: the emulator's v2 workspace, datastores and services."""

from __future__ import annotations

from typing import Any

V2_WORKSPACE = "retrainq-v2"
API = "api-version=2025-12-01"


def workspace_url(base_url: str, subscription_id: str, resource_group: str) -> str:
    """The ARM URL of the emulator's default v2 workspace."""
    return (
        f"{base_url}/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{V2_WORKSPACE}"
    )


def datastore_body(connection_string: str, container: str) -> dict[str, Any]:
    """An Azure Blob datastore PUT body for ``container`` of the account in a connection string."""
    parts = dict(
        part.split("=", 1) for part in connection_string.strip(";").split(";") if "=" in part
    )
    scheme, _, rest = parts["BlobEndpoint"].partition("://")
    return {
        "properties": {
            "datastoreType": "AzureBlob",
            "accountName": parts["AccountName"],
            "containerName": container,
            "endpoint": rest.split("/", 1)[0],
            "protocol": scheme,
            "credentials": {
                "credentialsType": "AccountKey",
                "secrets": {"secretsType": "AccountKey", "key": parts["AccountKey"]},
            },
        }
    }


def v2_settings(subscription_id: str, resource_group: str, datastore: str) -> dict[str, Any]:
    """The ``azureml_v2`` settings of a training service on the emulator's v2 workspace."""
    return {
        "subscription_id": subscription_id,
        "resource_group": resource_group,
        "workspace": V2_WORKSPACE,
        "compute": "cpu-cluster",
        "environment": "rq-sklearn/versions/1",
        "code": "rq-train/versions/1",
        "datastore": datastore,
        "model_kind": "bike_rental",
    }
