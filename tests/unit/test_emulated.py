"""Settings derived from an emulator config, and the stack config that keeps its file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emulator.config import default_config
from producer.devtools.devstack import StackConfig, StackPorts, choose_config
from producer.devtools.emulated import predictive_service_ids, training_services, worker_env
from tests.custom_spec import custom_config
from worker.settings import TrainingServiceConfig

URL = "http://127.0.0.1:8090"


def as_json(config: Any) -> dict[str, Any]:
    """A config as ``/_emulator/config`` answers it."""
    doc: dict[str, Any] = json.loads(config.model_dump_json())
    return doc


def test_the_default_config_keeps_its_service_names() -> None:
    """Bike rental is ``default`` and churn ``churn``, with their columns."""
    services = training_services(as_json(default_config(training_endpoints=2)), URL)
    assert list(services) == ["default", "churn"]
    assert len(services["default"]["endpoints"]) == 2
    assert services["default"]["max_running"] == 80
    assert services["churn"]["columns"][-1] == "churn"
    assert services["default"]["label_column"] == "cnt"
    assert services["churn"]["label_column"] == "churn"


def test_every_training_web_service_of_a_custom_config_is_a_service() -> None:
    """The first training web service is ``default``, the next is named after its spec; both
    are valid worker settings with the spec's columns and label."""
    config = as_json(custom_config())
    services = training_services(config, URL)
    assert list(services) == ["default", "blank"]
    features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert services["default"]["columns"] == [*features, "target"]
    assert services["default"]["label_column"] == "target"
    endpoint = config["workspaces"][0]["web_services"][0]["endpoints"][0]
    assert services["default"]["endpoints"][0]["url"].endswith(f"/services/{endpoint['id']}")
    for service in services.values():
        TrainingServiceConfig.model_validate(service)
    assert set(predictive_service_ids(config)) == {"diabetes", "blank"}


def test_two_training_services_of_one_spec_get_distinct_names() -> None:
    """A second training web service of the same spec is named after the web service."""
    config = as_json(custom_config())
    services = config["workspaces"][0]["web_services"]
    services.append({**services[0], "name": "Diabetes Training (EU)", "id": "e" * 32})
    services.append({**services[0], "name": "Diabetes Training (EU)", "id": "f" * 32})
    assert list(training_services(config, URL)) == [
        "default",
        "blank",
        "diabetes",
        "diabetes-training-eu",
    ]


def test_the_stack_keeps_the_emulator_config_file(tmp_path: Path) -> None:
    """Given once, the file is kept (absolute) by later ``up`` calls; an older kept config
    without it reads as the built-in config."""
    given = tmp_path / "emulator.json"
    first = choose_config(None, StackPorts(), given)
    assert first.emulator_config == str(given.resolve())
    first.write(tmp_path / "config.json")
    kept = StackConfig.read(tmp_path / "config.json")
    assert kept is not None
    assert choose_config(kept, StackPorts()).emulator_config == str(given.resolve())
    old = json.loads((tmp_path / "config.json").read_text())
    del old["emulator_config"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    legacy = StackConfig.read(tmp_path / "config.json")
    assert legacy is not None
    assert legacy.emulator_config is None
    assert legacy.admin_key == first.admin_key


def test_workers_on_the_emulator_score_a_staging_endpoint_at_once() -> None:
    """The emulator serves a PATCHed model at once: no settling wait before scoring."""
    env = worker_env(as_json(default_config()), URL)
    assert env["RETRAINQ_SCORING__STAGING_SETTLE_SECONDS"] == "0"
