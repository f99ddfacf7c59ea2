"""``retrainq doctor`` for Azure ML v2 training services: their workspace and datastore are
checked with the ARM token, instead of the BES key check they have nothing for."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from producer.devtools.emulated import worker_env
from tests.azureml_v2 import API, datastore_body, v2_settings, workspace_url
from tests.integration.test_doctor import emulator_settings, run
from worker.settings import WorkerSettings


def arm_config(emulator_url: str) -> dict[str, Any]:
    """The emulator's ARM subscription, resource group and token."""
    with urllib.request.urlopen(f"{emulator_url}/_emulator/config", timeout=5) as reply:
        arm: dict[str, Any] = json.loads(reply.read())["arm"]
    return arm


def register(emulator_url: str, name: str, connection_string: str, container: str) -> None:
    """PUT an Azure Blob datastore into the emulator's v2 workspace."""
    arm = arm_config(emulator_url)
    url = workspace_url(emulator_url, arm["subscription_id"], arm["resource_groups"][0])
    request = urllib.request.Request(
        f"{url}/datastores/{name}?{API}",
        data=json.dumps(datastore_body(connection_string, container)).encode(),
        headers={"Authorization": f"Bearer {arm['token']}", "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.status in (200, 201)


def with_v2(
    redis_url: str, blob_connection_string: str, emulator_url: str, datastore: str
) -> WorkerSettings:
    """The emulator's settings plus a v2 service on ``datastore``."""
    with urllib.request.urlopen(f"{emulator_url}/_emulator/config", timeout=5) as reply:
        config: dict[str, Any] = json.loads(reply.read())
    services = json.loads(worker_env(config, emulator_url)["RETRAINQ_TRAINING_SERVICES"])
    arm = config["arm"]
    v2 = v2_settings(arm["subscription_id"], arm["resource_groups"][0], datastore)
    services["v2"] = {"backend": "azureml_v2", "azureml_v2": {**v2, "arm_url": emulator_url}}
    return emulator_settings(
        redis_url,
        blob_connection_string,
        emulator_url,
        RETRAINQ_TRAINING_SERVICES=json.dumps(services),
    )


def test_a_v2_service_is_checked_at_its_workspace_not_as_a_bes_endpoint(
    redis_url: str,
    blob_connection_string: str,
    emulator_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its workspace answers and its datastore is on the worker's container: ok, exit 0, and
    no BES check names the v2 service."""
    settings = with_v2(redis_url, blob_connection_string, emulator_url, "doctorstore")
    register(emulator_url, "doctorstore", blob_connection_string, settings.blob.container)
    code, checks = run(settings, capsys)
    assert [c for c in checks if not c["ok"]] == []
    assert code == 0
    (v2,) = [c for c in checks if c["check"] == "v2 workspace v2"]
    assert "datastore doctorstore on" in v2["result"]
    assert not any(c["check"].startswith("BES v2") for c in checks)


def test_a_missing_or_misplaced_datastore_fails_with_its_fix(
    redis_url: str,
    blob_connection_string: str,
    emulator_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No such datastore: 'datastore not found' and how to register it. One on another
    container: the fix names the worker's container."""
    missing = with_v2(redis_url, blob_connection_string, emulator_url, "doctornone")
    code, checks = run(missing, capsys)
    (v2,) = [c for c in checks if c["check"] == "v2 workspace v2"]
    assert (code, v2["ok"], v2["result"]) == (1, False, "datastore not found")
    assert "register an Azure Blob datastore 'doctornone'" in v2["fix"]
    register(emulator_url, "doctorother", blob_connection_string, "elsewhere")
    misplaced = with_v2(redis_url, blob_connection_string, emulator_url, "doctorother")
    code, checks = run(misplaced, capsys)
    (v2,) = [c for c in checks if c["check"] == "v2 workspace v2"]
    assert (code, v2["ok"]) == (1, False)
    assert "on container elsewhere" in v2["result"]
    assert repr(misplaced.blob.container) in v2["fix"]
