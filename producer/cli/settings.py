"""Settings of the ``retrainq`` command-line client."""

from __future__ import annotations

from pydantic import SecretStr

from worker.settings import RetrainqSettings


class CliSettings(RetrainqSettings):
    """Settings of the ``retrainq`` CLI: where the API is and which key to use."""

    api_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr = SecretStr("")
