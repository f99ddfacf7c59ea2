"""``retrainq doctor`` against real Redis, Azurite and the emulator: passes when every key and
token is right, and names the failing dependency with its fix when one is wrong."""

from __future__ import annotations

import argparse
import json
import urllib.request
from typing import Any

import pytest

from producer.cli.doctor import doctor
from producer.devtools.emulated import worker_env
from producer.devtools.processes import free_port
from worker.settings import WorkerSettings


def emulator_settings(
    redis_url: str, blob_connection_string: str, emulator_url: str, **env: str
) -> WorkerSettings:
    """Worker settings the way an operator writes them, for the emulator's workspace."""
    with urllib.request.urlopen(f"{emulator_url}/_emulator/config", timeout=5) as reply:
        config: dict[str, Any] = json.loads(reply.read())
    values = {
        "RETRAINQ_REDIS__URL": redis_url,
        "RETRAINQ_BLOB__CONNECTION_STRING": blob_connection_string,
        **worker_env(config, emulator_url),
        **env,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        return WorkerSettings(_env_file=None)


def run(
    settings: WorkerSettings, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]]]:
    """Run the doctor with ``-o json``: the exit code and the checks."""
    code = doctor(argparse.Namespace(output="json"), lambda: settings)
    return code, json.loads(capsys.readouterr().out)


def test_every_dependency_answers(
    redis_url: str,
    blob_connection_string: str,
    emulator_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redis, blob storage, each BES endpoint, the management and ARM tokens: all ok, exit 0."""
    settings = emulator_settings(redis_url, blob_connection_string, emulator_url)
    code, checks = run(settings, capsys)
    assert [c for c in checks if not c["ok"]] == []
    assert code == 0
    names = [c["check"] for c in checks]
    assert names[:2] == ["redis", "blob storage"]
    assert any(name.startswith("BES default #") for name in names)
    assert names[-2:] == ["management token", "ARM token"]


def test_wrong_keys_and_a_dead_redis_are_named_with_fixes(
    redis_url: str,
    blob_connection_string: str,
    emulator_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused BES key, a refused workspace token and an unreachable Redis each fail."""
    good = emulator_settings(redis_url, blob_connection_string, emulator_url)
    services = {
        name: service.model_dump(mode="json") for name, service in good.training_services.items()
    }
    for service in services.values():
        for endpoint in service["endpoints"]:
            endpoint["api_key"] = "wrong-key"
    bad = emulator_settings(
        f"redis://127.0.0.1:{free_port()}/0",
        blob_connection_string,
        emulator_url,
        RETRAINQ_TRAINING_SERVICES=json.dumps(services),
        RETRAINQ_AZUREML__WORKSPACE_TOKEN="wrong-token",
    )
    code, checks = run(bad, capsys)
    assert code == 1
    failed = {c["check"]: c for c in checks if not c["ok"]}
    assert "RETRAINQ_REDIS__URL" in failed["redis"]["fix"]
    bes = [c for name, c in failed.items() if name.startswith("BES ")]
    assert bes
    assert all("API key was refused" in c["fix"] for c in bes)
    assert "RETRAINQ_AZUREML__WORKSPACE_TOKEN" in failed["management token"]["fix"]
    assert {c["check"] for c in checks if c["ok"]} == {"blob storage", "ARM token"}
    assert "wrong-key" not in json.dumps(checks)
