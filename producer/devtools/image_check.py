"""``make image-test``: the production image's API and worker, run by buildah, do the job.

Redis, Azurite and the emulator run on the host, started as the local stack starts them; the
API and one worker run from the image (``buildah run --network host``, each in its own
working container, as the image's user). One tenant is onboarded through the API and
retrained by the worker in the image; the API's ``/healthz``, ``/readyz`` and ``/metrics``,
the worker's ``/healthz`` and ``/metrics`` and the uid of both processes are checked, and
both must stop on SIGTERM. Each failed check is one line naming it; logs stay under
``artifacts/image-test/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from emulator import datagen
from producer.cli.client import ApiClient, ApiError
from producer.devtools.devstack import fetch_emulator_config
from producer.devtools.emulated import predictive_service_ids, worker_env
from producer.devtools.image import Buildah, ImageError, image_name
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
    redis_argv,
    redis_ready,
)
from producer.schemas import TenantCreate
from worker.schemas import ClassicTarget, RunState

IMAGE_UID = 10001
CONTAINER_PREFIX = "retrainq-image-test-"
ADMIN_KEY = "rtq_admin_image_test_only"
TENANT = "imagetest01"
RUN_TIMEOUT_SECONDS = 180.0


class CheckFailed(RuntimeError):
    """One check of the image failed; the message names it."""


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET (the status of an HTTP error too; 0 when unreachable)."""
    try:
        # Loopback URLs of services this check started itself.
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310
            return int(reply.status), reply.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def answers_health(port: int) -> bool:
    """Whether ``/healthz`` on ``port`` answers 200."""
    return http_get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)[0] == 200


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # Field 4 of stat is the parent pid; the name (field 2) may hold spaces.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> Iterator[int]:
    """Pids of every process below ``pid``."""
    children = _children()
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        yield child
        todo.extend(children.get(child, []))


def process_ids(pid: int) -> tuple[list[int], list[int]]:
    """Real, effective, saved and filesystem uids and gids of ``pid``."""
    uids: list[int] = []
    gids: list[int] = []
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, values = line.partition(":")
        if key in ("Uid", "Gid"):
            (uids if key == "Uid" else gids).extend(int(v) for v in values.split())
    return uids, gids


@dataclass
class ImageRole:
    """One console script of the image, in its own working container, run by buildah."""

    role: str
    buildah: Buildah
    image: str
    command: list[str]
    env: dict[str, str]
    health_port: int
    log_dir: Path
    container: str = ""
    process: ManagedProcess | None = field(default=None, repr=False)

    def start(self, timeout: float = 90.0) -> None:
        """Create the working container, give it its settings (through the container's
        config, so that secrets are on no long-lived command line) and run the command."""
        name = f"{CONTAINER_PREFIX}{self.role}-{os.getpid()}"
        self.container = self.buildah("from", "--pull=never", "--name", name, self.image).strip()
        settings = [arg for key, value in self.env.items() for arg in ("--env", f"{key}={value}")]
        self.buildah("config", *settings, self.container)
        argv = self.buildah.argv(
            "run", "--isolation", "chroot", "--network", "host", self.container, "--"
        )
        self.process = ManagedProcess(
            self.role,
            [*argv, *self.command],
            self.health_port,
            self.log_dir / f"{self.role}.log",
            ready=answers_health,
        )
        self.process.start(timeout=timeout)

    def service_pid(self) -> int:
        """Pid of the console script itself (the image's process, below buildah's helpers)."""
        if self.process is None:
            raise CheckFailed(f"{self.role} is not running")
        pythons = [
            pid
            for pid in descendants(self.process.pid)
            if _cmdline(pid)[:1] == ["/opt/venv/bin/python"]
        ]
        if not pythons:
            raise CheckFailed(f"{self.role}: no /opt/venv/bin/python process below buildah")
        return pythons[-1]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the console script, as a container runtime would; its exit code (None when
        it had to be killed). The working container is removed."""
        code: int | None = None
        if self.process is not None and self.process.proc is not None:
            with contextlib.suppress(CheckFailed, ProcessLookupError):
                os.kill(self.service_pid(), signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.proc.wait(timeout)
            self.process.stop()
        if self.container:
            subprocess.run(self.buildah.argv("rm", self.container), capture_output=True)
            self.container = ""
        return code


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def remove_leftovers(buildah: Buildah) -> None:
    """Remove working containers of earlier checks whose process is gone (killed runs)."""
    listed = json.loads(buildah("containers", "--json") or "null") or []
    for item in listed:
        name = str(item.get("containername", ""))
        if not name.startswith(CONTAINER_PREFIX):
            continue
        owner = name.rsplit("-", 1)[-1]
        if not (owner.isdigit() and pid_alive(int(owner))):
            subprocess.run(buildah.argv("rm", name), capture_output=True)


class ImageCheck:
    """Host services, the image's roles, and the checks, in order."""

    def __init__(self, buildah: Buildah, log_dir: Path) -> None:
        self.buildah = buildah
        self.log_dir = log_dir
        self.image = image_name("production")
        self.host: list[ManagedProcess] = []
        self.roles: list[ImageRole] = []
        self.passed: list[str] = []

    def ok(self, check: str) -> None:
        """Record and print a passed check."""
        self.passed.append(check)
        print(f"image-test: ok  {check}", flush=True)

    def start_host_services(self) -> dict[str, str]:
        """Redis, Azurite and the emulator on free loopback ports; the settings that point
        the API and the worker at them."""
        data = self.log_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        redis, azurite, emulator = free_port(), free_port(), free_port()
        plan = [
            ManagedProcess(
                "redis",
                redis_argv(ensure_redis_server(), redis, data, aof=False),
                redis,
                self.log_dir / "redis.log",
                ready=redis_ready,
            ),
            ManagedProcess(
                "azurite",
                azurite_argv(ensure_azurite(), azurite),
                azurite,
                self.log_dir / "azurite.log",
            ),
            ManagedProcess(
                "emulator",
                [console_script("retrainq-emulator"), "--port", str(emulator)],
                emulator,
                self.log_dir / "emulator.log",
                env={"RETRAINQ_EMULATOR_LOG_FORMAT": "json"},
            ),
        ]
        for process in plan:
            process.start(timeout=60)
            self.host.append(process)
        emulator_url = f"http://127.0.0.1:{emulator}"
        env = {
            "RETRAINQ_REDIS__URL": f"redis://127.0.0.1:{redis}/0",
            "RETRAINQ_BLOB__CONNECTION_STRING": azurite_connection_string(azurite),
            "RETRAINQ_ADMIN_KEYS": json.dumps([ADMIN_KEY]),
            **worker_env(fetch_emulator_config(emulator_url), emulator_url),
        }
        self.ok("host services: redis, azurite, emulator")
        return env

    def check_image(self) -> None:
        """The image runs as uid 10001 and carries no emulator dependency."""
        config = json.loads(self.buildah("inspect", "--type", "image", self.image))
        user = str(config.get("OCIv1", {}).get("config", {}).get("User", ""))
        if user.split(":")[0] != str(IMAGE_UID):
            raise CheckFailed(f"image user is {user!r}, not {IMAGE_UID}")
        self.ok(f"image {self.image} runs as user {user}")

    def start_roles(self, env: dict[str, str]) -> tuple[int, int, int]:
        """The API and a worker from the image; their ports (API, API metrics, worker)."""
        api, metrics, worker = free_port(), free_port(), free_port()
        api_env = {
            **env,
            "RETRAINQ_HOST": "127.0.0.1",
            "RETRAINQ_PORT": str(api),
            "RETRAINQ_METRICS_PORT": str(metrics),
        }
        worker_settings = {
            **env,
            "RETRAINQ_HEALTH_PORT": str(worker),
            "RETRAINQ_POD_NAME": "image-test-worker",
        }
        for role, command, role_env, port in (
            ("api", ["retrainq-api"], api_env, api),
            ("worker", ["retrainq-worker"], worker_settings, worker),
        ):
            started = ImageRole(
                role, self.buildah, self.image, command, role_env, port, self.log_dir
            )
            self.roles.append(started)
            started.start()
            self.ok(f"{role} from the image answers /healthz on {port}")
        return api, metrics, worker

    def check_endpoints(self, api: int, metrics: int, worker: int) -> None:
        """Health, readiness and metrics of the API and the worker."""
        for label, url, needle in (
            ("api /healthz", f"http://127.0.0.1:{api}/healthz", ""),
            ("api /readyz", f"http://127.0.0.1:{api}/readyz", ""),
            ("api /metrics", f"http://127.0.0.1:{metrics}/metrics", "retrainq_"),
            ("worker /healthz", f"http://127.0.0.1:{worker}/healthz", ""),
            ("worker /metrics", f"http://127.0.0.1:{worker}/metrics", "retrainq_"),
        ):
            status, body = http_get(url)
            if status != 200 or needle not in body:
                raise CheckFailed(f"{label}: HTTP {status}, expected 200 with {needle!r}")
            self.ok(label)

    def check_uids(self) -> None:
        """The API's and the worker's processes run as uid and gid 10001, never root."""
        for role in self.roles:
            pid = role.service_pid()
            uids, gids = process_ids(pid)
            if set(uids) != {IMAGE_UID} or set(gids) != {IMAGE_UID}:
                raise CheckFailed(f"{role.role} (pid {pid}) runs as uids {uids}, gids {gids}")
            self.ok(f"{role.role} runs as uid {IMAGE_UID} (pid {pid})")

    async def onboard_and_retrain(self, api: int, emulator_url: str) -> None:
        """Onboard one tenant, upload its data, retrain it; the run must succeed and deploy."""
        async with aiohttp.ClientSession() as session:
            client = ApiClient(f"http://127.0.0.1:{api}", SecretStr(ADMIN_KEY), session)
            async with session.get(f"{emulator_url}/_emulator/config") as reply:
                scoring = predictive_service_ids(await reply.json())["bike-rental"]
            target = ClassicTarget(
                web_service_id=scoring, resource_name="Bike Rental [trained model]"
            )
            await client.create_tenant(TenantCreate(id=TENANT, target=target, train=False))
            csv = datagen.bike_rental_csv(TENANT, 400, seed=1)
            await client.upload(TENANT, io.BytesIO(csv.encode()))
            self.ok(f"tenant {TENANT} onboarded with its data")
            run = (await client.retrain(TENANT, reason="image test")).run
            deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
            while not run.state.terminal:
                if time.monotonic() > deadline:
                    raise CheckFailed(f"run {run.id} still {run.state.value} after the timeout")
                await asyncio.sleep(0.5)
                run = await client.run(run.id)
            if run.state is not RunState.SUCCEEDED:
                raise CheckFailed(f"run {run.id} ended {run.state.value}: {run.error}")
            tenant = await client.get_tenant(TENANT)
            if tenant.deployed is None:
                raise CheckFailed(f"run {run.id} succeeded but {TENANT} has no deployed model")
            self.ok(f"retrain {run.id} succeeded and deployed")

    def stop_roles(self) -> None:
        """SIGTERM each role; each must exit by itself, with code 0."""
        failures = []
        for role in reversed(self.roles):
            code = role.stop()
            if code != 0:
                failures.append(f"{role.role} exited {code} on SIGTERM")
        self.roles.clear()
        if failures:
            raise CheckFailed("; ".join(failures))
        self.ok("api and worker stop on SIGTERM with exit 0")

    def teardown(self) -> None:
        """Stop everything still running (roles first)."""
        for role in reversed(self.roles):
            role.stop(timeout=10)
        for process in reversed(self.host):
            process.stop()

    def run(self) -> None:
        """Every check in order; raises at the first failure."""
        remove_leftovers(self.buildah)
        if not self.buildah.exists(self.image):
            raise CheckFailed(f"{self.image} is not built: run 'make image'")
        self.check_image()
        env = self.start_host_services()
        api, metrics, worker = self.start_roles(env)
        self.check_endpoints(api, metrics, worker)
        self.check_uids()
        asyncio.run(self.onboard_and_retrain(api, env["RETRAINQ_AZUREML__MANAGEMENT_URL"]))
        self.stop_roles()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m producer.devtools.image_check [--root DIR]``; 0 when every check passed."""
    parser = argparse.ArgumentParser(prog="image-test", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="buildah storage root (default: buildah's)")
    parser.add_argument("--logs", type=Path, default=PROJECT_ROOT / "artifacts" / "image-test")
    args = parser.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    check = ImageCheck(Buildah(root=args.root), args.logs)
    started = time.monotonic()
    try:
        check.run()
    except (CheckFailed, ApiError, aiohttp.ClientError, ImageError, ServiceError, OSError) as exc:
        print(f"image-test: FAILED {exc}", file=sys.stderr)
        print(f"image-test: logs in {args.logs}", file=sys.stderr)
        for role in check.roles:
            if role.process is not None:
                print(f"--- {role.role}:\n{role.process.log_tail()}", file=sys.stderr)
        return 1
    finally:
        check.teardown()
    print(f"image-test: {len(check.passed)} checks passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
