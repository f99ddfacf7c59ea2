"""Settings shared by every retrainq component, and the worker's own settings.

One ``Settings`` class per component, all on ``RetrainqSettings``: environment variables use
the ``RETRAINQ_`` prefix and ``__`` for nesting (``RETRAINQ_REDIS__URL``), a ``.env`` file is
read when present, and every secret is a ``SecretStr``. Settings are built once in an entry
point and passed down; nothing below the entry points reads ``os.environ``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["auto", "json", "console"]


class RedisConfig(BaseModel):
    """Where Redis lives; the URL may carry a password, so it is a secret."""

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    prefix: str = Field(default="retrainq", pattern=r"^[a-z0-9_-]{1,32}$")
    queue_name: str = "retrainq:queue"


class BlobConfig(BaseModel):
    """Blob storage holding training data, models and evaluation CSVs."""

    connection_string: SecretStr = SecretStr("UseDevelopmentStorage=true")
    container: str = Field(default="retrainq", pattern=r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
    sas_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)


class LogConfig(BaseModel):
    """How log lines are rendered."""

    format: LogFormat = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class RetrainqSettings(BaseSettings):
    """Base of every component's settings: Redis, blob storage and logging."""

    model_config = SettingsConfigDict(
        env_prefix="RETRAINQ_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    redis: RedisConfig = RedisConfig()
    blob: BlobConfig = BlobConfig()
    log: LogConfig = LogConfig()


class AzureMLConfig(BaseModel):
    """Base URLs and credentials of the Azure ML (classic) surfaces the worker calls."""

    management_url: str = "https://management.azureml.net"
    arm_url: str = "https://management.azure.com"
    workspace_id: str = "00000000000000000000000000000000"
    workspace_token: SecretStr = SecretStr("")
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "retrainq"
    arm_token: SecretStr = SecretStr("")
    request_timeout_seconds: float = Field(default=20.0, gt=0, le=120)


class WorkerSettings(RetrainqSettings):
    """Settings of ``retrainq-worker``."""

    max_jobs: int = Field(default=200, ge=1, le=5000)
    job_timeout_seconds: int = Field(default=60, ge=5, le=600)
    health_port: int = Field(default=9100, ge=0, le=65535)
    health_check_interval_seconds: int = Field(default=10, ge=1)
    pod_name: str = "worker"
    azureml: AzureMLConfig = AzureMLConfig()
