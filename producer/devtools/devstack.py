"""The local stack behind ``retrainq dev up|down|status``: Redis, Azurite, emulator, API, workers.

The stack outlives a restart: Redis keeps its AOF under ``.stack/redis``, Azurite its blobs
under ``.stack/azurite``, and the ports and admin key chosen by the first ``up`` are kept in
``.stack/config.json``, so ``down`` then ``up`` brings back the same URLs, key and data.
``up`` starts only what is not running (a stack with one dead worker gets that worker back),
writes the connection settings to ``.stack/env`` (read by the other commands and by
``make demo``) and the pids to ``.stack/stack.json``; ``down`` stops exactly those pids.
``up --wait`` stays in the foreground and stops everything on Ctrl-C or SIGTERM.
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
    free_stable_port,
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


@dataclass(frozen=True)
class RunningService:
    """A started process as recorded in the state file."""

    name: str
    pid: int
    port: int
    log: str


@dataclass(frozen=True)
class StackConfig:
    """What every ``up`` of one stack reuses: the ports its URLs name, its admin key and the
    emulator's config file (None: the built-in config).

    Workers are reached through Redis only, so their health ports are chosen at each start.
    """

    redis: int
    azurite: int
    emulator: int
    api: int
    admin_key: str
    emulator_config: str | None = None

    @classmethod
    def read(cls, path: Path) -> StackConfig | None:
        """The config kept at ``path``, or None if there is none."""
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})

    def write(self, path: Path) -> None:
        """Keep the config (owner-only: it holds the admin key)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))
        path.chmod(0o600)


def choose_config(
    kept: StackConfig | None, asked: StackPorts, emulator_config: Path | None = None
) -> StackConfig:
    """Ports given on the command line, else those of the kept config, else free ones outside
    the ephemeral range; the kept admin key, else a new one; the emulator config file given
    (kept as an absolute path), else the kept one."""

    def port(given: int, old: int | None) -> int:
        return given or old or free_stable_port()

    return StackConfig(
        redis=port(asked.redis, kept.redis if kept else None),
        azurite=port(asked.azurite, kept.azurite if kept else None),
        emulator=port(asked.emulator, kept.emulator if kept else None),
        api=port(asked.api, kept.api if kept else None),
        admin_key=kept.admin_key if kept else "rtq_admin_" + secrets.token_urlsafe(24),
        emulator_config=str(emulator_config.resolve())
        if emulator_config
        else (kept.emulator_config if kept else None),
    )


def stack_env(config: StackConfig) -> dict[str, str]:
    """Settings (as environment variables) that point every component at this stack."""
    emulator_url = f"http://127.0.0.1:{config.emulator}"
    return {
        "RETRAINQ_REDIS__URL": f"redis://127.0.0.1:{config.redis}/0",
        "RETRAINQ_BLOB__CONNECTION_STRING": azurite_connection_string(config.azurite),
        "RETRAINQ_ADMIN_KEYS": json.dumps([config.admin_key]),
        "RETRAINQ_API_URL": f"http://127.0.0.1:{config.api}",
        "RETRAINQ_API_KEY": config.admin_key,
        "RETRAINQ_PORT": str(config.api),
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
        self.config_file = state_dir / "config.json"
        self.env_file = state_dir / "env"
        self.log_dir = state_dir / "logs"
        self.started: list[str] = []
        self.kept: list[str] = []

    def recorded(self) -> list[RunningService]:
        """Services recorded by the last ``up`` (empty when none)."""
        if not self.state_file.exists():
            return []
        raw = json.loads(self.state_file.read_text())
        return [RunningService(**item) for item in raw["services"]]

    def _record(self, services: list[RunningService]) -> None:
        self.state_file.write_text(json.dumps({"services": [asdict(s) for s in services]}))

    def up(
        self, workers: int = 2, ports: StackPorts | None = None, emulator_config: Path | None = None
    ) -> dict[str, str]:
        """Start whatever of the stack is not running; on a failure stop what this call started
        and raise. ``started`` and ``kept`` name the services started and found running.
        ``emulator_config`` is the emulator's ``--config`` file, kept for later ``up`` calls
        (a running emulator keeps the config it started with)."""
        redis_bin = ensure_redis_server()
        azurite_bin = ensure_azurite()
        config = choose_config(
            StackConfig.read(self.config_file), ports or StackPorts(), emulator_config
        )
        config.write(self.config_file)
        env = stack_env(config)
        for name in ("redis", "azurite"):
            (self.state_dir / name).mkdir(parents=True, exist_ok=True)
        infrastructure = [
            ManagedProcess(
                "redis",
                redis_argv(redis_bin, config.redis, self.state_dir / "redis", aof=True),
                config.redis,
                self.log_dir / "redis.log",
                ready=redis_ready,
            ),
            ManagedProcess(
                "azurite",
                azurite_argv(azurite_bin, config.azurite, self.state_dir / "azurite"),
                config.azurite,
                self.log_dir / "azurite.log",
            ),
            ManagedProcess(
                "emulator",
                [
                    console_script("retrainq-emulator"),
                    "--port",
                    str(config.emulator),
                    *(["--config", config.emulator_config] if config.emulator_config else []),
                ],
                config.emulator,
                self.log_dir / "emulator.log",
                env={"RETRAINQ_EMULATOR_LOG_FORMAT": "json"},
            ),
        ]
        running = {s.name: s for s in self.recorded() if pid_alive(s.pid) and _is_ours(s.pid)}
        services: list[RunningService] = []
        self.started, self.kept = [], []
        try:
            self._ensure(infrastructure, running, services)
            emulator_url = env["RETRAINQ_EMULATOR_URL"]
            env.update(worker_env(fetch_emulator_config(emulator_url), emulator_url))
            self._ensure([self._api(config, env)], running, services)
            self._ensure(self._workers(workers, env), running, services, movable=True)
        except BaseException:
            for service in reversed(services):
                if service.name in self.started:
                    stop_pid(service.pid)
            self._record([s for s in services if s.name in self.kept])
            raise
        for name, extra in running.items():  # workers beyond the count asked for
            if name not in self.kept:
                stop_pid(extra.pid)
        write_env_file(self.env_file, env)
        return env

    def _api(self, config: StackConfig, env: dict[str, str]) -> ManagedProcess:
        return ManagedProcess(
            "api",
            [console_script("retrainq-api"), "--port", str(config.api)],
            config.api,
            self.log_dir / "api.log",
            env=env,
        )

    def _workers(self, count: int, env: dict[str, str]) -> list[ManagedProcess]:
        plan = []
        for index in range(1, count + 1):
            port = free_port()
            plan.append(
                ManagedProcess(
                    f"worker-{index}",
                    [console_script("retrainq-worker"), "--health-port", str(port)],
                    port,
                    self.log_dir / f"worker-{index}.log",
                    env={**env, "RETRAINQ_POD_NAME": f"worker-{index}"},
                )
            )
        return plan

    def _ensure(
        self,
        plan: list[ManagedProcess],
        running: dict[str, RunningService],
        services: list[RunningService],
        *,
        movable: bool = False,
    ) -> None:
        """Keep each planned service that runs (on its planned port, unless ``movable``);
        start the others."""
        for process in plan:
            alive = running.get(process.name)
            if alive is not None and (movable or alive.port == process.port):
                services.append(alive)
                self.kept.append(process.name)
            else:
                if alive is not None:  # running on a port the config no longer names
                    stop_pid(alive.pid)
                if port_open(process.port):
                    raise ServiceError(
                        f"port {process.port} for {process.name} is taken by another process; "
                        f"stop it, or delete {self.config_file} to choose new ports"
                    )
                process.start(timeout=60)
                services.append(
                    RunningService(process.name, process.pid, process.port, str(process.log_path))
                )
                self.started.append(process.name)
            self._record(services)

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
