"""The local stack behind ``retrainq dev up|down|status``: Redis, Azurite, emulator, API, workers.

``up`` starts every service on free (or given) ports, writes the connection settings it used to
``.stack/env`` (read by the other commands and by ``make demo``) and the pids it started to
``.stack/stack.json``; ``down`` stops exactly those pids. ``up --wait`` stays in the foreground
and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from producer.devtools.emulated import worker_env
from producer.devtools.processes import (
    PROJECT_ROOT,
    ManagedProcess,
    ServiceError,
    azurite_argv,
    azurite_connection_string,
    console_script,
    ensure_azurite,
    ensure_redis_server,
    free_port,
    pid_alive,
    port_open,
    redis_argv,
    redis_ready,
    stop_pid,
)

DEFAULT_STATE_DIR = PROJECT_ROOT / ".stack"


@dataclass(frozen=True)
class StackPorts:
    """Ports of the stack's services (0 means pick a free one)."""

    redis: int = 0
    azurite: int = 0
    emulator: int = 0
    api: int = 0

    def resolved(self) -> StackPorts:
        """The same ports with every 0 replaced by a free port."""
        return StackPorts(
            redis=self.redis or free_port(),
            azurite=self.azurite or free_port(),
            emulator=self.emulator or free_port(),
            api=self.api or free_port(),
        )


@dataclass(frozen=True)
class RunningService:
    """A started process as recorded in the state file."""

    name: str
    pid: int
    port: int
    log: str


def stack_env(ports: StackPorts, admin_key: str) -> dict[str, str]:
    """Settings (as environment variables) that point every component at this stack."""
    emulator_url = f"http://127.0.0.1:{ports.emulator}"
    return {
        "RETRAINQ_REDIS__URL": f"redis://127.0.0.1:{ports.redis}/0",
        "RETRAINQ_BLOB__CONNECTION_STRING": azurite_connection_string(ports.azurite),
        "RETRAINQ_ADMIN_KEYS": json.dumps([admin_key]),
        "RETRAINQ_API_URL": f"http://127.0.0.1:{ports.api}",
        "RETRAINQ_API_KEY": admin_key,
        "RETRAINQ_PORT": str(ports.api),
        "RETRAINQ_EMULATOR_URL": emulator_url,
        "RETRAINQ_LOG__FORMAT": "json",
    }


def fetch_emulator_config(emulator_url: str) -> dict[str, Any]:
    """The emulator's effective configuration (workspaces, services, keys)."""
    url = f"{emulator_url}/_emulator/config"
    # The URL is the loopback emulator this stack started itself, never user input.
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310
        config: dict[str, Any] = json.loads(reply.read())
    return config


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write ``KEY='value'`` lines readable by pydantic-settings, make and a shell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}='{value}'" for key, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an env file written by ``write_env_file``."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'")
    return values


class DevStack:
    """Starts, records, reports and stops the local stack."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "stack.json"
        self.env_file = state_dir / "env"
        self.log_dir = state_dir / "logs"

    def recorded(self) -> list[RunningService]:
        """Services recorded by the last ``up`` (empty when none)."""
        if not self.state_file.exists():
            return []
        raw = json.loads(self.state_file.read_text())
        return [RunningService(**item) for item in raw["services"]]

    def _record(self, services: list[RunningService]) -> None:
        self.state_file.write_text(json.dumps({"services": [asdict(s) for s in services]}))

    def up(self, workers: int = 2, ports: StackPorts | None = None) -> dict[str, str]:
        """Start everything; on any failure stop what was started and raise."""
        if any(pid_alive(s.pid) for s in self.recorded()):
            raise ServiceError("the stack is already up; run 'retrainq dev down' first")
        redis_bin = ensure_redis_server()
        azurite_bin = ensure_azurite()
        chosen = (ports or StackPorts()).resolved()
        admin_key = "rtq_admin_" + secrets.token_urlsafe(24)
        env = stack_env(chosen, admin_key)
        (self.state_dir / "redis").mkdir(parents=True, exist_ok=True)
        infrastructure = [
            ManagedProcess(
                "redis",
                redis_argv(redis_bin, chosen.redis, self.state_dir / "redis", aof=True),
                chosen.redis,
                self.log_dir / "redis.log",
                ready=redis_ready,
            ),
            ManagedProcess(
                "azurite",
                azurite_argv(azurite_bin, chosen.azurite),
                chosen.azurite,
                self.log_dir / "azurite.log",
            ),
            ManagedProcess(
                "emulator",
                [console_script("retrainq-emulator"), "--port", str(chosen.emulator)],
                chosen.emulator,
                self.log_dir / "emulator.log",
                env={"RETRAINQ_EMULATOR_LOG_FORMAT": "json"},
            ),
        ]
        started: list[RunningService] = []
        try:
            self._start(infrastructure, started)
            emulator_url = env["RETRAINQ_EMULATOR_URL"]
            env.update(worker_env(fetch_emulator_config(emulator_url), emulator_url))
            self._start(self._application(chosen, env, workers), started)
        except BaseException:
            for service in reversed(started):
                stop_pid(service.pid)
            self.state_file.unlink(missing_ok=True)
            raise
        write_env_file(self.env_file, env)
        return env

    def _application(
        self, ports: StackPorts, env: dict[str, str], workers: int
    ) -> list[ManagedProcess]:
        api = ManagedProcess(
            "api",
            [console_script("retrainq-api"), "--port", str(ports.api)],
            ports.api,
            self.log_dir / "api.log",
            env=env,
        )
        plan = [api]
        for index in range(workers):
            port = free_port()
            plan.append(
                ManagedProcess(
                    f"worker-{index + 1}",
                    [console_script("retrainq-worker"), "--health-port", str(port)],
                    port,
                    self.log_dir / f"worker-{index + 1}.log",
                    env={**env, "RETRAINQ_POD_NAME": f"worker-{index + 1}"},
                )
            )
        return plan

    def _start(self, plan: list[ManagedProcess], started: list[RunningService]) -> None:
        for process in plan:
            process.start(timeout=60)
            started.append(
                RunningService(process.name, process.pid, process.port, str(process.log_path))
            )
            self._record(started)

    def status(self) -> list[tuple[RunningService, bool, bool]]:
        """Each recorded service with (process alive, port answering)."""
        return [(s, pid_alive(s.pid), port_open(s.port)) for s in self.recorded()]

    def down(self) -> list[RunningService]:
        """Stop exactly the recorded processes (workers first, Redis last)."""
        services = self.recorded()
        for service in reversed(services):
            if pid_alive(service.pid) and _is_ours(service.pid):
                stop_pid(service.pid, timeout=15)
        self.state_file.unlink(missing_ok=True)
        return services

    def wait_forever(self) -> None:
        """Block until Ctrl-C or SIGTERM, or until a service dies; then stop everything."""

        def _stop(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        try:
            while all(alive for _, alive, _ in self.status()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.down()


def _is_ours(pid: int) -> bool:
    # A recorded pid may have been reused by an unrelated process after a reboot.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    markers = (b"redis-server", b"azurite", b"retrainq-", b"emulator", b"producer", b"worker")
    return any(marker in cmdline for marker in markers)
