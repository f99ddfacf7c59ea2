"""Settings of ``retrainq-api``."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from worker.settings import AzureMLConfig, RetrainqSettings


class ApiSettings(RetrainqSettings):
    """Settings of the enqueue API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    admin_keys: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=64 * 1_048_576, ge=1024)
    rate_limit_requests: int = Field(
        default=50, ge=1, description="requests one API key may make per rate-limit window"
    )
    rate_limit_window_seconds: int = Field(default=1, ge=1, le=3600)
    redis_timeout_seconds: float = Field(
        default=2.0, gt=0, le=60, description="socket timeout of Redis calls (no hang: 503)"
    )
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="how long an Idempotency-Key is remembered"
    )
    failed_auth_per_address: int = Field(
        default=30,
        ge=1,
        description="failed authentications one client address may make per "
        "window before it is answered 429",
    )
    failed_auth_per_key_prefix: int = Field(
        default=60,
        ge=1,
        description="failed authentications with keys sharing their first 8 "
        "characters per window (from any address)",
    )
    failed_auth_window_seconds: int = Field(default=60, ge=1, le=3600)
    min_tenant_schedule_seconds: int = Field(
        default=60, ge=60, description="tenant schedules may fire at most this often"
    )
    min_fleet_schedule_seconds: int = Field(
        default=300, ge=60, description="fleet-wide schedules may fire at most this often"
    )
    numeric_columns: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per training service, the CSV columns that must hold finite numbers "
        "(a column not listed is numeric when its first value is a number)",
    )
    max_upload_rows: int = Field(
        default=2_000_000, ge=1, description="data rows an uploaded training CSV may hold"
    )
    preflight: bool = Field(
        default=True,
        description="check a tenant's target and global parameters against Azure ML before "
        "it is stored (a request may skip it with ?verify=false)",
    )
    azureml: AzureMLConfig = AzureMLConfig()
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="port of the API's own /metrics, apart from the API's port (0: a free "
        "port, logged at start; deployments set 9102)",
    )
    enqueue_concurrency: int = Field(
        default=64, ge=1, le=1024, description="arq enqueues in flight for a bulk retrain"
    )

    @model_validator(mode="after")
    def _metrics_apart_from_the_api(self) -> ApiSettings:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(
                f"metrics_port ({self.metrics_port}) must differ from port: /metrics is served "
                "apart from the API"
            )
        return self
