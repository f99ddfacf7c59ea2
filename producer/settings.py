"""Settings of ``retrainq-api`` and the ``retrainq`` command-line client."""

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


class CliSettings(RetrainqSettings):
    """Settings of the ``retrainq`` CLI: where the API is and which key to use."""

    api_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr = SecretStr("")
