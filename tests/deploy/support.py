"""Helpers of the deploy tests: repository paths, kustomize rendering and settings' env names."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from emulator.config import EmulatorSettings
from producer.api.settings import ApiSettings
from producer.cli.settings import CliSettings
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
SCALEDOBJECT_SCHEMA = DEPLOY / "schemas" / "scaledobject.schema.json"
PODMONITOR_SCHEMA = DEPLOY / "schemas" / "podmonitor.schema.json"
PROMETHEUSRULE_SCHEMA = DEPLOY / "schemas" / "prometheusrule.schema.json"
# Custom resources are not in the Kubernetes schemas: each kind has a project schema instead.
CRD_SCHEMAS = {
    "ScaledObject": SCALEDOBJECT_SCHEMA,
    "PodMonitor": PODMONITOR_SCHEMA,
    "PrometheusRule": PROMETHEUSRULE_SCHEMA,
}
KUBERNETES_VERSION = "1.32.0"

Doc = dict[str, Any]


def kubectl() -> str:
    """Path of kubectl; the deploy tests fail (never skip) without it."""
    found = shutil.which("kubectl")
    if found is None and Path("/usr/bin/kubectl").exists():
        found = "/usr/bin/kubectl"
    if found is None:
        pytest.fail("kubectl is required to render deploy/k8s (install kubectl >= 1.27)")
    return found


def render(overlay: str) -> list[Doc]:
    """Documents of ``kubectl kustomize deploy/k8s/<overlay>``; fails the test on an error."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[Doc], kind: str, name_prefix: str = "") -> list[Doc]:
    """Documents of ``kind`` whose name starts with ``name_prefix``."""
    return [
        d for d in docs if d["kind"] == kind and str(d["metadata"]["name"]).startswith(name_prefix)
    ]


def one(docs: list[Doc], kind: str, name_prefix: str) -> Doc:
    """The single document of ``kind`` named ``name_prefix``... (a ConfigMap has a hash suffix)."""
    found = find(docs, kind, name_prefix)
    assert len(found) == 1, f"expected one {kind} {name_prefix!r}, found {len(found)}"
    return found[0]


def load_json(path: Path) -> Any:
    """A JSON file's content."""
    return json.loads(path.read_text())


def console_scripts() -> set[str]:
    """Names of the console scripts pyproject.toml installs."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["scripts"])


def _env_names(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", field


def settings_env_names(*classes: type[BaseSettings]) -> set[str]:
    """Environment variable names of every field of ``classes``, nested models walked with __."""
    names: set[str] = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        names.update(name for name, _field in _env_names(cls, prefix))
    return names


COMPONENT_SETTINGS: tuple[type[BaseSettings], ...] = (WorkerSettings, ApiSettings, CliSettings)
ALL_SETTINGS: tuple[type[BaseSettings], ...] = (*COMPONENT_SETTINGS, EmulatorSettings)
