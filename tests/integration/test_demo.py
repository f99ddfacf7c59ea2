"""The main job: ``retrainq demo`` on a fresh stack of its own (a smaller fleet here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from producer.devtools.processes import console_script, pid_alive

pytestmark = pytest.mark.timeout(240)


def test_demo_runs_end_to_end_lists_every_tenant_and_writes_its_report(tmp_path: Path) -> None:
    """Exit 0, a result row per tenant, predictions shown, a report written, nothing left."""
    report = tmp_path / "report.html"
    state = tmp_path / "stack"
    done = subprocess.run(
        [
            console_script("retrainq"),
            "demo",
            "--tenants",
            "6",
            "--new-services",
            "2",
            "--report",
            str(report),
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for tenant in ["rental001", "rental004", "station001", "station002"]:
        assert f"│ {tenant}" in done.stdout
    assert "predictions before and after" in done.stdout
    assert "6 tenants; bulk retrain:" in done.stdout
    page = report.read_text()
    assert "<svg" in page
    assert page.count("<tr>") == 7  # header + one row per tenant
    assert "stopped the demo's stack" in done.stdout
    assert not (state / "stack.json").exists()
    assert processes_mentioning(str(state)) == []


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (the demo's Redis has it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and pid_alive(int(proc.name)):
            found.append(int(proc.name))
    return found
