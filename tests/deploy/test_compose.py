"""deploy/compose.yaml: valid against the Compose Specification schema and wired as designed."""

from __future__ import annotations

import copy
import re
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed

from tests.deploy.support import ALL_SETTINGS, DEPLOY, console_scripts, settings_env_names
from worker.settings import WorkerSettings

COMPOSE = DEPLOY / "compose.yaml"
OWN_SERVICES = ("emulator", "api", "worker-1", "worker-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.protocols.Validator:
    """The Compose Specification schema vendored by check-jsonschema (works offline)."""
    path = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = yaml.safe_load(path.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema)


def env_file(compose: dict[str, Any], service: str) -> dict[str, str]:
    """Variables of a service's env files (KEY=value lines)."""
    values: dict[str, str] = {}
    for entry in compose["services"][service].get("env_file", []):
        path = DEPLOY / (entry["path"] if isinstance(entry, dict) else entry)
        assert path.exists(), f"{service}: env file {path} is missing"
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value
    return values


def seconds(duration: str) -> float:
    """A compose duration such as ``1m30s`` in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_matches_the_compose_specification(
    compose: dict[str, Any], compose_schema: jsonschema.protocols.Validator
) -> None:
    """The file validates against the Compose Specification JSON schema."""
    errors = [f"{e.json_path}: {e.message}" for e in compose_schema.iter_errors(compose)]
    assert errors == []


def test_compose_schema_rejects_an_unknown_service_key(
    compose: dict[str, Any], compose_schema: jsonschema.protocols.Validator
) -> None:
    """The schema check has teeth: a misspelt service key fails."""
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["healthcheckk"] = broken["services"]["api"].pop("healthcheck")
    assert list(compose_schema.iter_errors(broken))


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    """Redis, Azurite, the emulator, the API and both workers declare a health check."""
    services = compose["services"]
    assert set(services) == {"redis", "azurite", *OWN_SERVICES}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name


def test_redis_runs_with_the_project_config_and_a_volume(compose: dict[str, Any]) -> None:
    """Redis loads deploy/redis.conf (AOF) and keeps its files on a named volume."""
    redis = compose["services"]["redis"]
    mounts = [v.split(":") for v in redis["volumes"]]
    conf = next(m for m in mounts if m[0] == "./redis.conf")
    assert (DEPLOY / "redis.conf").exists()
    assert conf[1] in redis["command"]
    assert any(m[1] == "/data" and m[0] in compose["volumes"] for m in mounts)


def test_own_services_run_their_image_and_console_scripts(compose: dict[str, Any]) -> None:
    """API and workers run the production image, the emulator the emulator image, both built
    from deploy/docker/Dockerfile; each service has an exec-form command naming a console
    script."""
    dockerfile = DEPLOY / "docker" / "Dockerfile"
    stages = set(re.findall(r"^FROM \S+ AS ([\w-]+)$", dockerfile.read_text(), flags=re.M))
    scripts = console_scripts()
    images: dict[str, set[str]] = {}
    for name in OWN_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        assert build["dockerfile"] == "deploy/docker/Dockerfile"
        assert (DEPLOY / build["context"] / build["dockerfile"]).exists()
        assert build["target"] in stages, name
        images.setdefault(build["target"], set()).add(service["image"])
        assert isinstance(service["command"], list), name
        assert service["command"][0] in scripts, name
        assert service.get("read_only") is True, name
    assert compose["services"]["emulator"]["build"]["target"] == "emulator"
    assert {compose["services"][name]["build"]["target"] for name in OWN_SERVICES[1:]} == {
        "production"
    }
    assert all(len(tags) == 1 for tags in images.values()), images
    assert images["emulator"] != images["production"]


def test_two_workers_with_their_own_pod_names(compose: dict[str, Any]) -> None:
    """Each worker has a distinct RETRAINQ_POD_NAME (its health key) and waits for its
    dependencies to be healthy."""
    names = set()
    for name in ("worker-1", "worker-2"):
        worker = compose["services"][name]
        assert worker["command"] == ["retrainq-worker"]
        names.add(worker["environment"]["RETRAINQ_POD_NAME"])
        conditions = {dep: spec["condition"] for dep, spec in worker["depends_on"].items()}
        assert conditions == {
            "redis": "service_healthy",
            "azurite": "service_healthy",
            "emulator": "service_healthy",
            "api": "service_healthy",
        }
    assert len(names) == 2


def test_worker_stop_grace_covers_completion_wait(compose: dict[str, Any]) -> None:
    """stop_grace_period >= job_completion_wait (the job timeout) + 30 s, so SIGTERM lets
    running steps finish."""
    for name in ("worker-1", "worker-2"):
        worker = compose["services"][name]
        default = WorkerSettings.model_fields["job_timeout_seconds"].default
        timeout = int(env_file(compose, name).get("RETRAINQ_JOB_TIMEOUT_SECONDS", default))
        assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
        assert seconds(worker["stop_grace_period"]) >= timeout + 30


def test_env_file_names_only_real_settings(compose: dict[str, Any]) -> None:
    """Every RETRAINQ_ variable of the env file and service environments is a real setting."""
    known = settings_env_names(*ALL_SETTINGS)
    names: set[str] = set()
    for name in OWN_SERVICES:
        names |= set(env_file(compose, name)) | set(
            compose["services"][name].get("environment", {})
        )
    unknown = sorted(n for n in names if n.startswith("RETRAINQ_") and n not in known)
    assert unknown == []
    assert {"RETRAINQ_REDIS__URL", "RETRAINQ_BLOB__CONNECTION_STRING"} <= names
