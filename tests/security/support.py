"""Shared pieces of the security tests: sizes, the API as a subprocess, RSS, reporting."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.devtools.processes import ManagedProcess, console_script, free_port
from tests.integration.conftest_api import ADMIN_KEY

FULL = os.environ.get("RETRAINQ_CHAOS_FULL") == "1"


def size(bounded: int, full: int) -> int:
    """The bounded figure in ``make test``, the full one with RETRAINQ_CHAOS_FULL=1."""
    return full if FULL else bounded


def report(test: str, **figures: object) -> dict[str, object]:
    """Print the figures of a test as one JSON line (appended to $RETRAINQ_CHAOS_REPORT too)."""
    summary = {"test": test, "full": FULL, **figures}
    line = json.dumps(summary, default=str)
    print(f"\nSECURITY {line}", flush=True)
    target = os.environ.get("RETRAINQ_CHAOS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    return summary


async def clear_of_window_edge(window_seconds: int, needed_seconds: float) -> None:
    """Wait, if need be, until a fixed rate-limit window has ``needed_seconds`` left, so that
    counts made now all fall into one window (windows are ``time // window_seconds``)."""
    left = window_seconds - time.time() % window_seconds
    if left < needed_seconds:
        await asyncio.sleep(left + 0.05)


def vm_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from ``/proc/<pid>/status``."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    assert found, status
    return int(found.group(1))


@dataclass
class ServedApi:
    """A ``retrainq-api`` subprocess: its base URL, process and log."""

    url: str
    process: ManagedProcess

    @property
    def pid(self) -> int:
        """Pid of the API process."""
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """Where the API's stdout and stderr go."""
        return self.process.log_path

    def log_text(self) -> str:
        """Everything the API wrote so far."""
        return self.log_path.read_text(errors="replace")


def api_env(redis_url: str, blob_connection_string: str, **extra: str) -> dict[str, str]:
    """Environment of a ``retrainq-api`` pointed at the test services (admin key of the tests)."""
    return {
        "RETRAINQ_REDIS__URL": redis_url,
        "RETRAINQ_BLOB__CONNECTION_STRING": blob_connection_string,
        "RETRAINQ_BLOB__CONTAINER": "security",
        "RETRAINQ_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
        "RETRAINQ_RATE_LIMIT_REQUESTS": "100000",
        "RETRAINQ_FAILED_AUTH_PER_ADDRESS": "100000",
        "RETRAINQ_FAILED_AUTH_PER_KEY_PREFIX": "100000",
        "RETRAINQ_METRICS_PORT": "0",
        "RETRAINQ_PREFLIGHT": "false",
        "RETRAINQ_LOG__FORMAT": "json",
        **extra,
    }


def start_api(log_dir: Path, env: dict[str, str], name: str = "api") -> ServedApi:
    """Start ``retrainq-api`` on a free port with ``env`` (no .env: cwd is ``log_dir``)."""
    port = free_port()
    process = ManagedProcess(
        name,
        [console_script("retrainq-api"), "--port", str(port)],
        port,
        log_dir / f"{name}.log",
        env=env,
        cwd=log_dir,
    )
    process.start(timeout=60)
    return ServedApi(f"http://127.0.0.1:{port}", process)


def unhandled_errors(log: str) -> list[dict[str, Any]]:
    """The ``api.unhandled_error`` lines (each is a 500) of an API log."""
    found = []
    for line in log.splitlines():
        if "api.unhandled_error" in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append({"line": line[:500]})
    return found
