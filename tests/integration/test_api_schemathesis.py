"""schemathesis against the served ``/openapi.json``: no 5xx and no response outside the schema
(a bounded run: a few examples per operation, deterministic seed)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from producer.devtools.processes import ManagedProcess, console_script, free_port
from tests.integration.conftest_api import ADMIN_KEY

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture
def served_api(
    redis: aioredis.Redis, redis_url: str, blob_connection_string: str, tmp_path: Path
) -> Iterator[str]:
    """``retrainq-api`` as a subprocess on a free port; its base URL."""
    port = free_port()
    env = {
        "RETRAINQ_REDIS__URL": redis_url,
        "RETRAINQ_BLOB__CONNECTION_STRING": blob_connection_string,
        "RETRAINQ_BLOB__CONTAINER": "schemathesis",
        "RETRAINQ_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
        "RETRAINQ_RATE_LIMIT_REQUESTS": "100000",
        "RETRAINQ_PREFLIGHT": "false",
        "RETRAINQ_LOG__FORMAT": "json",
    }
    api = ManagedProcess(
        "api",
        [console_script("retrainq-api"), "--port", str(port)],
        port,
        tmp_path / "api.log",
        env=env,
        cwd=tmp_path,
    )
    api.start(timeout=30)
    yield f"http://127.0.0.1:{port}"
    api.stop()
    log = (tmp_path / "api.log").read_text()
    assert "api.unhandled_error" not in log, log[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_schemathesis_finds_no_server_error_or_schema_violation(
    served_api: str, tmp_path: Path
) -> None:
    """Generated requests (valid and invalid) never get a 5xx or an undocumented response."""
    done = subprocess.run(
        [
            console_script("st"),
            "run",
            f"{served_api}/openapi.json",
            "--header",
            f"Authorization: Bearer {ADMIN_KEY}",
            "--checks",
            CHECKS,
            "--max-examples",
            "60",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--workers",
            "1",  # hypothesis' lambda introspection is not thread-safe (spurious runtime errors)
            "--request-timeout",
            "10",
            "--no-color",
            "--generation-database",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,  # a bound against a hang, not a measure: the API has ~50 operations
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
