"""The local stack survives ``down`` then ``up``: same URL and key, tenants still retrain and
roll back; ``up`` on a stack with a dead worker restarts that worker only."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import datagen
from producer.cli.main import main
from producer.devtools.devstack import DevStack, fetch_emulator_config
from producer.devtools.emulated import predictive_service_ids
from producer.devtools.processes import pid_alive
from tests.integration.fleet import RESOURCE

pytestmark = pytest.mark.timeout(300)
TERMINAL = {"succeeded", "rejected", "failed", "cancelled"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    """A one-worker local stack in a temporary state directory, stopped at the end."""
    dev = DevStack(state_dir=tmp_path / "stack")
    try:
        yield dev
    finally:
        dev.down()


def cli(capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> Any:
    """``retrainq ARGV -o json`` against the stack; the parsed stdout (fails on a non-zero exit)."""
    flags = ["--api-url", env["RETRAINQ_API_URL"], "--api-key", env["RETRAINQ_API_KEY"]]
    code = main([*argv, *flags, "-o", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out) if captured.out.strip() else None


def finished(capsys: pytest.CaptureFixture[str], env: dict[str, str], run_id: str) -> str:
    """The run's final state (polls the API until the run has ended)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = cli(capsys, env, "runs", "show", run_id)
        if run["state"] in TERMINAL:
            assert run["state"] == "succeeded", run["error"]
            return str(run["state"])
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end")


def test_down_then_up_keeps_url_key_and_a_retrainable_tenant(
    stack: DevStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two retrains, a restart of the whole stack, then a third retrain and a rollback."""
    env = stack.up(workers=1)
    config = fetch_emulator_config(env["RETRAINQ_EMULATOR_URL"])
    target = f"{predictive_service_ids(config)['bike-rental']}:{RESOURCE}"
    data = tmp_path / "rental.csv"
    data.write_text(datagen.bike_rental_csv("rental", 300, seed=3))
    cli(capsys, env, "tenants", "create", "rental", "--classic", target, "--no-train")
    cli(capsys, env, "data", "upload", "rental", str(data))
    for _ in range(2):
        finished(capsys, env, cli(capsys, env, "retrain", "rental")["run"]["id"])

    stack.down()
    again = stack.up(workers=1)
    assert stack.started == ["redis", "azurite", "emulator", "api", "worker-1"]
    assert again["RETRAINQ_API_URL"] == env["RETRAINQ_API_URL"]
    assert again["RETRAINQ_API_KEY"] == env["RETRAINQ_API_KEY"]
    tenant = cli(capsys, env, "tenants", "show", "rental")
    assert tenant["deployed"]["seq"] == 2
    finished(capsys, env, cli(capsys, env, "retrain", "rental")["run"]["id"])
    rollback = cli(capsys, env, "rollback", "rental")["run"]
    finished(capsys, env, rollback["id"])
    models = cli(capsys, env, "tenants", "show", "rental")["deployed"]
    assert models["rollback_of"] is not None


def test_up_restarts_only_a_dead_worker(stack: DevStack) -> None:
    """With every service running ``up`` starts nothing; a killed worker alone comes back."""
    stack.up(workers=2)
    before = {s.name: s.pid for s in stack.recorded()}
    stack.up(workers=2)
    assert stack.started == []
    assert {s.name: s.pid for s in stack.recorded()} == before
    worker = next(s for s in stack.recorded() if s.name == "worker-1")

    os.kill(worker.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(worker.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.up(workers=2)
    assert stack.started == ["worker-1"]
    after = {s.name: s.pid for s in stack.recorded()}
    assert after["worker-1"] != before["worker-1"]
    assert {k: v for k, v in after.items() if k != "worker-1"} == {
        k: v for k, v in before.items() if k != "worker-1"
    }
