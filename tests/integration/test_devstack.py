"""The local stack launcher starts everything and ``down`` leaves nothing behind."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from producer.devtools.devstack import DevStack, read_env_file
from producer.devtools.processes import pid_alive, port_open


def test_up_then_down_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    """After ``up`` every service answers; after ``down`` no pid lives and no port listens."""
    stack = DevStack(state_dir=tmp_path / "stack")
    try:
        env = stack.up(workers=2)
        services = stack.recorded()
        names = [s.name for s in services]
        assert names == ["redis", "azurite", "emulator", "api", "worker-1", "worker-2"]
        assert all(alive and listening for _, alive, listening in stack.status())
        assert read_env_file(stack.env_file) == env
        with urllib.request.urlopen(env["RETRAINQ_API_URL"] + "/readyz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        stopped = stack.down()
    assert stopped, "down found nothing recorded"
    for service in stopped:
        assert not pid_alive(service.pid), f"{service.name} still running"
        assert not port_open(service.port), f"port {service.port} of {service.name} still open"
    assert stack.status() == []
