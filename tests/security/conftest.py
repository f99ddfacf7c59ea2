"""Fixtures of the security tests: the API in-process (``api``) and as a real subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest_api import api, api_settings
from tests.security.support import ServedApi, api_env, start_api, unhandled_errors

__all__ = ["api", "api_settings", "served_api"]


@pytest.fixture
def served_api(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str, tmp_path: Path
) -> Iterator[Callable[..., ServedApi]]:
    """Start ``retrainq-api`` subprocesses (extra env as keywords); none may log a 500."""
    started: list[ServedApi] = []

    def start(**env: str) -> ServedApi:
        name = f"api-{len(started) + 1}"
        served = start_api(tmp_path, api_env(redis_url, blob_connection_string, **env), name)
        started.append(served)
        return served

    yield start
    for served in started:
        served.process.stop()
    for served in started:
        errors = unhandled_errors(served.log_text())
        assert not errors, errors[:3]
