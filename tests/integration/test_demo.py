"""The main job: ``retrainq demo`` on a fresh local stack of its own (a smaller fleet here).

The demo's stack is the launcher's (``DevStack``), so the same run shows that ``up`` starts
every service and that ``down`` leaves no process and no port behind.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from producer.devtools.devstack import DevStack, RunningService, read_env_file
from producer.devtools.processes import console_script, pid_alive, port_open

pytestmark = pytest.mark.timeout(240)

SERVICES = ["redis", "azurite", "emulator", "api", "worker-1", "worker-2"]


def test_demo_runs_end_to_end_on_a_stack_it_starts_and_stops(tmp_path: Path) -> None:
    """Every service answers while the demo runs; exit 0, a result row per tenant (classic
    tenants judged on the same held-out rows, new web services on reported figures),
    predictions shown, a report written; afterwards no pid lives and no port listens."""
    report = tmp_path / "report.html"
    state = tmp_path / "stack"
    output = tmp_path / "demo.out"
    argv = [console_script("retrainq"), "demo", "--tenants", "6", "--new-services", "2"]
    argv += ["--report", str(report), "--state-dir", str(state)]
    with output.open("w") as out, subprocess.Popen(argv, stdout=out, stderr=out, text=True) as demo:
        try:
            services = wait_until_up(DevStack(state_dir=state), demo, output, within=120)
            env = read_env_file(DevStack(state_dir=state).env_file)
            with urllib.request.urlopen(env["RETRAINQ_API_URL"] + "/readyz", timeout=5) as reply:
                assert reply.status == 200
            returncode = demo.wait(timeout=200)
        finally:
            if demo.poll() is None:
                demo.kill()
    printed = output.read_text()
    assert returncode == 0, printed[-6000:]
    rows = {line.split("│")[1].strip(): line for line in printed.splitlines() if "│ " in line}
    both = r"│\s+-?\d\.\d{3} │\s+-?\d\.\d{3} │ [+-]\d\.\d{3} │"  # deployed, candidate, change
    for tenant in ["rental001", "rental004"]:  # classic: judged on the same held-out rows
        assert re.search(r"│ \d+ new rows\s+" + both, rows[tenant]), rows[tenant]
    for tenant in ["station001", "station002"]:  # new web services: no staging copy
        assert re.search(r"│ reported\s+" + both, rows[tenant]), rows[tenant]
    assert "the candidate on the same rows" in printed
    assert "predictions before and after" in printed
    assert "6 tenants; bulk retrain:" in printed
    page = report.read_text()
    assert "<svg" in page
    assert "deployed model on the new rows → candidate on the same" in page
    assert page.count('<tr data-evaluation="holdout">') == 4  # one row per tenant
    assert page.count('<tr data-evaluation="reported">') == 2
    assert page.count('data-kind="interval"') == 4  # each holdout decision's whisker
    assert "stopped the demo's stack" in printed
    for service in services:
        assert not pid_alive(service.pid), f"{service.name} still running"
        assert not port_open(service.port), f"port {service.port} of {service.name} still open"
    assert DevStack(state_dir=state).status() == []
    assert processes_mentioning(str(state)) == []


def wait_until_up(
    stack: DevStack, demo: subprocess.Popen[str], output: Path, within: float
) -> list[RunningService]:
    """The stack's services once all of them run and listen and its env file is written."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert demo.poll() is None, f"the demo ended early:\n{output.read_text()[-6000:]}"
        try:
            rows = stack.status() if stack.env_file.exists() else []
        except ValueError:  # the state file is being rewritten as a service starts
            rows = []
        if [s.name for s, _, _ in rows] == SERVICES and all(a and b for _, a, b in rows):
            return [s for s, _, _ in rows]
        time.sleep(0.1)
    raise AssertionError(f"stack not up after {within}s:\n{output.read_text()[-6000:]}")


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
