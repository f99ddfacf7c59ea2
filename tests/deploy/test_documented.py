"""Every setting is in .env.example and docs/OPERATIONS.md; the docs name only real settings,
metrics and log events."""

from __future__ import annotations

import re

import pytest
from prometheus_client import Counter, Gauge, Histogram

from producer.api.metrics import API_METRICS
from tests.deploy.support import (
    ALL_SETTINGS,
    COMPONENT_SETTINGS,
    REPO,
    settings_env_names,
)
from worker.metrics import METRICS
from worker.settings import BesEndpointConfig, TrainingServiceConfig

ENV_EXAMPLE = REPO / ".env.example"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"
SOURCES = ("worker", "producer")
EVENT_CALL = re.compile(r"log\.(?:debug|info|warning|error|exception)\(\s*f?\"([a-z_.{}]+)\"")


def env_example_names(*, include_commented: bool) -> set[str]:
    """Variables assigned in .env.example (``NAME=``, or ``# NAME=`` when commented)."""
    pattern = (
        r"^(?:#\s*)?(RETRAINQ_[A-Z0-9_]+)=" if include_commented else r"^(RETRAINQ_[A-Z0-9_]+)="
    )
    return set(re.findall(pattern, ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def operations_text() -> str:
    """docs/OPERATIONS.md (the test fails, not errors, when it is missing)."""
    if not OPERATIONS.exists():
        pytest.fail("docs/OPERATIONS.md is missing")
    return OPERATIONS.read_text()


def metric_names() -> set[str]:
    """Exposition names of every metric the worker and the API export."""
    names = set()
    for metrics in (METRICS, API_METRICS):
        for metric in vars(metrics).values():
            assert isinstance(metric, Counter | Gauge | Histogram)
            name = next(iter(metric.describe())).name
            # Counters are exposed (and queried) with the _total suffix.
            names.add(f"{name}_total" if isinstance(metric, Counter) else name)
    return names


def log_events() -> set[str]:
    """Event names logged by the worker and the API (f-string names kept with their braces)."""
    events = set()
    for package in SOURCES:
        for path in (REPO / package).rglob("*.py"):
            events |= set(EVENT_CALL.findall(path.read_text()))
    return events


def test_every_setting_is_in_env_example() -> None:
    """Each field of the worker, API and CLI settings (nested models as A__B) is in .env.example."""
    missing = settings_env_names(*COMPONENT_SETTINGS) - env_example_names(include_commented=True)
    assert sorted(missing) == []


def test_env_example_sets_only_real_settings() -> None:
    """.env.example assigns no variable that no settings class reads (a typo is ignored)."""
    unknown = env_example_names(include_commented=False) - settings_env_names(*ALL_SETTINGS)
    assert sorted(unknown) == []


def test_every_setting_is_documented() -> None:
    """Each setting, including the emulator's and the training-service JSON keys, appears in
    docs/OPERATIONS.md."""
    text = operations_text()
    missing = sorted(n for n in settings_env_names(*ALL_SETTINGS) if f"`{n}`" not in text)
    assert missing == []
    keys = set(TrainingServiceConfig.model_fields) | {
        f"endpoints[].{k}" for k in BesEndpointConfig.model_fields
    }
    assert sorted(k for k in keys if f"`{k}`" not in text) == []


def test_docs_name_only_real_settings() -> None:
    """Every RETRAINQ_ variable the docs mention exists."""
    mentioned = set(re.findall(r"\bRETRAINQ_[A-Z0-9_]*[A-Z0-9]\b", operations_text()))
    unknown = mentioned - settings_env_names(*ALL_SETTINGS)
    assert sorted(unknown) == []


def test_metrics_are_documented_and_none_invented() -> None:
    """The metrics table lists exactly the metrics the code exports."""
    documented = set(re.findall(r"\bretrainq_[a-z_]+\b", operations_text()))
    exported = metric_names()
    assert sorted(exported - documented) == []
    assert sorted(documented - exported) == []


def test_documented_log_events_exist() -> None:
    """Every event in the docs' log table is logged somewhere (run.<state> from the enum)."""
    from worker.schemas import RunState

    table = operations_text().split("## Log events", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_.]+)`", table, flags=re.MULTILINE))
    documented |= set(re.findall(r"`(run\.[a-z_]+)`", table))
    assert documented
    logged = {e for e in log_events() if "{" not in e}
    logged |= {f"run.{state.value}" for state in RunState}
    assert sorted(documented - logged) == []
