"""Settings of ``retrainq-api``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from worker.settings import RetrainqSettings


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
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    enqueue_concurrency: int = Field(
        default=64, ge=1, le=1024, description="arq enqueues in flight for a bulk retrain"
    )
