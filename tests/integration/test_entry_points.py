"""Every console script runs and prints its help; a bad setting, or a Redis it cannot reach,
stops it with one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from producer.devtools.processes import console_script, free_port


@pytest.mark.parametrize(
    "script", ["retrainq", "retrainq-api", "retrainq-worker", "retrainq-emulator"]
)
def test_help_exits_zero(script: str) -> None:
    """``<script> --help`` exits 0 and describes usage."""
    done = subprocess.run(
        [console_script(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize(
    ("script", "variable", "value", "named"),
    [
        ("retrainq-worker", "RETRAINQ_MAX_JOBS", "0", "max_jobs"),
        ("retrainq-worker", "RETRAINQ_LEASE_SECONDS", "60", "lease_seconds (60)"),
        ("retrainq-api", "RETRAINQ_PORT", "-1", "port"),
        (
            "retrainq-api",
            "RETRAINQ_TRAINING_SERVICES",
            '{"default": {"max_running": 4, "interactive_reserve": 4}}',
            "interactive_reserve (4)",
        ),
    ],
)
def test_invalid_settings_are_one_line_and_exit_2(
    script: str, variable: str, value: str, named: str, tmp_path: Path
) -> None:
    """A bad setting stops the process before it starts, naming the setting, no traceback."""
    env = {**os.environ, variable: value}
    done = subprocess.run(
        [console_script(script)], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{script}: invalid ")
    assert named in lines[0]


def test_a_worker_that_cannot_reach_redis_exits_1_without_a_traceback(tmp_path: Path) -> None:
    """After arq's connection retries the worker logs one error line and exits 1."""
    env = {
        **os.environ,
        "RETRAINQ_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
        "RETRAINQ_LOG__FORMAT": "json",
    }
    done = subprocess.run(
        [console_script("retrainq-worker")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = json.loads(done.stderr.strip().splitlines()[-1])
    assert (last["event"], last["level"], last["error_type"]) == (
        "worker.failed",
        "error",
        "ConnectionError",
    )
