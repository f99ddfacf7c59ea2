"""Emulator settings (env/CLI) and the declarative config of workspaces, services and keys.

``EmulatorSettings`` is how the process runs (host, port, seed, logging; env prefix
``RETRAINQ_EMULATOR_``). ``EmulatorConfig`` is what it emulates, loaded from a JSON file
(``--config``) or ``default_config()``:

- model specs ``bike-rental`` (regression, label ``cnt``; numeric yr, holiday, workingday,
  temp, atemp, hum, windspeed; one-hot season, mnth, hr, weekday, weathersit and the
  interaction ``hr*workingday``) and ``churn`` (binary classification, label ``churn``;
  numeric tenure, monthly_charges, support_calls, paperless; one-hot contract);
- one workspace with training services "Bike Rental Training" and "Churn Training" (BES,
  ``input1`` or the GlobalParameter ``URI``/``Data URI``; outputs ``output1`` model,
  ``output2`` evaluation) and predictive services "Bike Rental Scoring" (resource
  "Bike Rental [trained model]") and "Churn Scoring" (resource "Churn [trained model]"), each
  with a ``default`` endpoint;
- an ARM subscription and resource group holding template new web services
  ``bike-rental-template`` and ``churn-template``.

A config file may declare its own model specs; each trains its initial model on the CSV its
``initial_data`` names (relative to the file), on a built-in generator (``datagen``), or has none.

Ids, keys and tokens of the default config are fixed (derived from names by SHA-256) so that
tests and the local stack can read them from ``--print-config`` or ``GET /_emulator/config``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from emulator.durations import JobDurations
from emulator.training import ModelSpec

HEX32 = r"^[0-9a-f]{32}$"
Surface = Literal["bes_submit", "bes_start", "bes_status", "bes_delete", "rrs", "management", "arm"]
SURFACES: tuple[Surface, ...] = (
    "bes_submit",
    "bes_start",
    "bes_status",
    "bes_delete",
    "rrs",
    "management",
    "arm",
)


def derived_id(name: str) -> str:
    """A stable 32-hex id derived from ``name``."""
    return hashlib.sha256(f"retrainq-emulator:id:{name}".encode()).hexdigest()[:32]


def derived_key(name: str) -> str:
    """A stable 88-character base64 API key derived from ``name``."""
    digest = hashlib.sha512(f"retrainq-emulator:key:{name}".encode()).digest()
    return base64.b64encode(digest).decode()


class EmulatorSettings(BaseSettings):
    """How the emulator process runs; CLI flags override ``RETRAINQ_EMULATOR_*`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="RETRAINQ_EMULATOR_", env_file=".env", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    config: Path | None = None
    seed: int = 7
    public_url: str | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def base_url(self) -> str:
        """URL clients use to reach this process (``--public-url`` or ``http://host:port``)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


class EndpointConfig(BaseModel):
    """One endpoint of a classic web service: its runtime id and keys."""

    name: str = Field(pattern=r"^[a-z0-9]{1,24}$")
    id: str = Field(pattern=HEX32)
    primary_key: str
    secondary_key: str
    description: str = ""
    throttle_level: Literal["High", "Low"] = "High"
    max_concurrent_calls: int = Field(default=20, ge=1, le=200)
    max_concurrent_jobs: int = Field(default=40, ge=1, le=10_000)


class WebServiceConfig(BaseModel):
    """A classic web service: training (BES) or predictive (has a trained-model resource)."""

    id: str = Field(pattern=HEX32)
    name: str
    kind: Literal["training", "predictive"]
    model: str = Field(description="name of a ModelSpec")
    endpoints: list[EndpointConfig] = Field(min_length=1)
    max_endpoints: int = Field(default=10_000, ge=1)
    data_uri_parameters: list[str] = Field(default_factory=lambda: ["URI", "Data URI"])


class WorkspaceConfig(BaseModel):
    """A Machine Learning Studio (classic) workspace and its web services."""

    id: str = Field(pattern=HEX32)
    name: str = "retrainq"
    region: str = "southcentralus"
    authorization_token: str
    secondary_token: str = ""
    web_services: list[WebServiceConfig] = Field(default_factory=list)


class ArmWebServiceConfig(BaseModel):
    """A new (ARM) web service present at start, typically a template to copy per tenant."""

    name: str
    title: str
    description: str = ""
    model: str = Field(description="name of a ModelSpec")
    primary_key: str
    secondary_key: str


class ArmConfig(BaseModel):
    """The ARM side: one subscription, its resource groups, bearer token and services.

    ``web_services`` live in the first resource group; PUTs may use any listed group.
    """

    subscription_id: str
    resource_groups: list[str] = Field(default_factory=lambda: ["retrainq"], min_length=1)
    token: str
    location: str = "southcentralus"
    web_services: list[ArmWebServiceConfig] = Field(default_factory=list)


class RuntimeSettings(BaseModel):
    """Knobs changeable at run time through ``PUT /_emulator/settings``."""

    min_job_seconds: float = Field(default=0.0, ge=0)
    instant: bool = False
    provisioning_delay_seconds: float = Field(default=0.5, ge=0)
    sas_ttl_seconds: int = Field(default=86_400, ge=60)
    # Off (None): a job lasts min_job_seconds or its work; on: see emulator/durations.py.
    job_durations: JobDurations | None = None


class FaultSpec(BaseModel):
    """Faults of one surface; all zero means healthy."""

    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: Literal[429, 500, 503] = 503
    latency_seconds: float = Field(default=0.0, ge=0, le=600)
    fail_next: int = Field(default=0, ge=0)
    commit_then_drop: int = Field(default=0, ge=0)


class FaultsConfig(BaseModel):
    """Faults per surface plus the BES job failure rate."""

    bes_submit: FaultSpec = FaultSpec()
    bes_start: FaultSpec = FaultSpec()
    bes_status: FaultSpec = FaultSpec()
    bes_delete: FaultSpec = FaultSpec()
    rrs: FaultSpec = FaultSpec()
    management: FaultSpec = FaultSpec()
    arm: FaultSpec = FaultSpec()
    bes_job_failure_rate: float = Field(default=0.0, ge=0, le=1)

    def surface(self, name: Surface) -> FaultSpec:
        """The fault spec of one surface."""
        spec: FaultSpec = getattr(self, name)
        return spec


class EmulatorConfig(BaseModel):
    """Everything the emulator serves; see the module docstring for the default."""

    models: list[ModelSpec]
    workspaces: list[WorkspaceConfig]
    arm: ArmConfig
    settings: RuntimeSettings = RuntimeSettings()
    faults: FaultsConfig = FaultsConfig()
    initial_model_rows: int = Field(default=2000, ge=16)

    def spec(self, name: str) -> ModelSpec:
        """The model spec called ``name``."""
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(f"no model spec named {name!r}")


def load_config(path: Path) -> EmulatorConfig:
    """Read and validate a JSON config file; a model spec's relative ``initial_data`` path is
    taken relative to the file's folder (and kept absolute)."""
    config = EmulatorConfig.model_validate(json.loads(path.read_text()))
    for spec in config.models:
        if spec.initial_data is not None and not spec.initial_data.is_absolute():
            spec.initial_data = path.resolve().parent / spec.initial_data
    return config


BIKE_RENTAL = ModelSpec(
    name="bike-rental",
    kind="regression",
    label="cnt",
    numeric_features=["yr", "holiday", "workingday", "temp", "atemp", "hum", "windspeed"],
    categorical_features=["season", "mnth", "hr", "weekday", "weathersit", "hr*workingday"],
    resource_name="Bike Rental [trained model]",
    datagen="bike_rental",
)
CHURN = ModelSpec(
    name="churn",
    kind="binary_classification",
    label="churn",
    numeric_features=["tenure", "monthly_charges", "support_calls", "paperless"],
    categorical_features=["contract"],
    resource_name="Churn [trained model]",
    datagen="churn",
)


def _endpoint(service: str, name: str) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        id=derived_id(f"{service}/{name}"),
        primary_key=derived_key(f"{service}/{name}/primary"),
        secondary_key=derived_key(f"{service}/{name}/secondary"),
    )


def _training(name: str, model: str, endpoints: int) -> WebServiceConfig:
    names = ["default", *(f"bes{i}" for i in range(2, endpoints + 1))]
    return WebServiceConfig(
        id=derived_id(name),
        name=name,
        kind="training",
        model=model,
        endpoints=[_endpoint(name, n) for n in names],
    )


def _predictive(name: str, model: str) -> WebServiceConfig:
    return WebServiceConfig(
        id=derived_id(name),
        name=name,
        kind="predictive",
        model=model,
        endpoints=[_endpoint(name, "default")],
    )


def default_config(training_endpoints: int = 1) -> EmulatorConfig:
    """The documented default: one workspace, two service pairs, one ARM resource group."""
    return EmulatorConfig(
        models=[BIKE_RENTAL, CHURN],
        workspaces=[
            WorkspaceConfig(
                id=derived_id("workspace"),
                authorization_token=derived_key("workspace/primary"),
                secondary_token=derived_key("workspace/secondary"),
                web_services=[
                    _training("Bike Rental Training", "bike-rental", training_endpoints),
                    _predictive("Bike Rental Scoring", "bike-rental"),
                    _training("Churn Training", "churn", 1),
                    _predictive("Churn Scoring", "churn"),
                ],
            )
        ],
        arm=ArmConfig(
            subscription_id="00000000-0000-4000-8000-000000000001",
            token=derived_key("arm/token"),
            web_services=[
                ArmWebServiceConfig(
                    name="bike-rental-template",
                    title="Bike Rental Scoring (template)",
                    model="bike-rental",
                    primary_key=derived_key("arm/bike-rental-template/primary"),
                    secondary_key=derived_key("arm/bike-rental-template/secondary"),
                ),
                ArmWebServiceConfig(
                    name="churn-template",
                    title="Churn Scoring (template)",
                    model="churn",
                    primary_key=derived_key("arm/churn-template/primary"),
                    secondary_key=derived_key("arm/churn-template/secondary"),
                ),
            ],
        ),
    )
