"""Every console script runs and prints its help."""

from __future__ import annotations

import subprocess

import pytest

from producer.processes import console_script


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
