"""Starting, waiting for and stopping local service processes (used by the dev stack and tests)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"


class ServiceError(RuntimeError):
    """A local service could not be installed, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Below Linux's ephemeral range (32768-60999), from which every outgoing connection takes its
# local port: a port kept across restarts is far less likely to be taken while a stack is down.
STABLE_PORTS = range(20000, 32000)


def free_stable_port() -> int:
    """A free port outside the ephemeral range, for services whose port is kept across runs."""
    for _ in range(200):
        port = random.choice(STABLE_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104  # probing: closed at once
            except OSError:
                continue
        return port
    return free_port()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def redis_ready(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a Redis on ``port`` answers PING (not merely listening while it loads its AOF)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis_server() -> str:
    """Path of ``redis-server``; installs Debian's package when root on Debian."""
    found = shutil.which("redis-server")
    if found:
        return found
    debian = Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None
    if debian and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
            check=True,
            env=env,
        )
        found = shutil.which("redis-server")
        if found:
            return found
    raise ServiceError(
        "redis-server is not installed. Install it with "
        "'sudo apt-get install redis-server' (Debian/Ubuntu) or your platform's package, "
        "then run the command again."
    )


def ensure_azurite() -> Path:
    """Path of the project's pinned Azurite blob service; runs ``npm ci`` when missing.

    The install holds an exclusive lock on ``.azurite-install.lock``: ``npm ci`` first
    deletes ``node_modules``, so two processes installing at once (two test sessions on one
    checkout) would otherwise remove each other's files. A process that waited for the lock
    finds Azurite installed and returns.
    """
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    npm = shutil.which("npm")
    if npm is None:
        raise ServiceError("npm is not installed; install Node.js 20 and npm, then run again.")
    lock_path = PROJECT_ROOT / ".azurite-install.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not AZURITE_BIN.exists():
            package_lock = PROJECT_ROOT / "package-lock.json"
            verb = "ci" if package_lock.exists() else "install"
            command = [npm, verb, "--no-audit", "--no-fund"]
            subprocess.run(command, check=True, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    if not AZURITE_BIN.exists():
        raise ServiceError(f"npm finished but {AZURITE_BIN} is missing")
    return AZURITE_BIN
    npm = shutil.which("npm")
    if npm is None:
        raise ServiceError("npm is not installed; install Node.js 20 and npm, then run again.")
    lock = PROJECT_ROOT / "package-lock.json"
    command = [npm, "ci" if lock.exists() else "install", "--no-audit", "--no-fund"]
    subprocess.run(command, check=True, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    if not AZURITE_BIN.exists():
        raise ServiceError(f"npm finished but {AZURITE_BIN} is missing")
    return AZURITE_BIN


def redis_argv(binary: str, port: int, data_dir: Path, *, aof: bool = True) -> list[str]:
    """Command line of a private redis-server on ``port`` keeping its files in ``data_dir``."""
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    if aof:
        argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        argv += ["--appendonly", "no"]
    return argv


def azurite_argv(binary: Path, port: int, location: Path | None = None) -> list[str]:
    """Command line of an Azurite blob service on ``port``: in memory, or keeping its blobs
    under ``location`` so that they outlive a restart."""
    keep = ["--inMemoryPersistence"] if location is None else ["--location", str(location)]
    return [
        str(binary),
        *keep,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--silent",
    ]


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_connection_string(port: int) -> str:
    """Connection string of Azurite's well-known development account on ``port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


def console_script(name: str) -> str:
    """Path of one of this project's console scripts, next to the running interpreter."""
    import sys

    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} is not installed; run 'make install'")
    return found


@dataclass
class ManagedProcess:
    """One child service: started in its own session, ready when its port answers."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ready: Callable[[int], bool] = port_open
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """Pid of the running process."""
        if self.proc is None:
            raise ServiceError(f"{self.name} is not running")
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its port accepts connections."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, **(self.env or {})}
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Wait until the port answers; fail with the log's tail if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if self.ready(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not open port {self.port} in {timeout:.0f}s")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process (e.g. SIGKILL or SIGSTOP in chaos tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and wait for it."""
        if self.proc is not None:
            stop_pid(self.proc.pid, timeout, waiter=self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again with the same command line and port."""
        self.stop()
        self.start(timeout)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_pid(
    pid: int, timeout: float = 10.0, waiter: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM ``pid``, wait up to ``timeout``, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if waiter is not None:
            if waiter.poll() is not None:
                return
        elif not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if waiter is not None:
        waiter.wait(5)
