"""``retrainq-worker check-data-paths`` reports every tenant whose data is not its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile

import redis.asyncio as aioredis

from producer.devtools.processes import console_script
from worker.keys import Keys
from worker.schemas import ClassicTarget, Tenant
from worker.tenants import TenantRecords

TARGET = ClassicTarget(web_service_id="svc", resource_name="model")


async def _run_check(redis_url: str, **env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        console_script("retrainq-worker"),
        "check-data-paths",
        env={"RETRAINQ_REDIS__URL": redis_url, "PATH": "/usr/bin:/bin", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tempfile.gettempdir(),  # no .env of the checkout
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_check_data_paths_lists_foreign_paths_and_exits_1(
    redis: aioredis.Redis, redis_url: str
) -> None:
    records = TenantRecords(redis, Keys())
    for tenant_id, path in [
        ("own", "data/own/v1.csv"),
        ("thief", "data/victim/v1.csv"),
        ("shared", "common/bikes.csv"),
        ("nodata", None),
    ]:
        await records.create_tenant(Tenant(id=tenant_id, target=TARGET, data_path=path))

    code, out = await _run_check(redis_url)
    assert code == 1, out
    lines = out.splitlines()
    assert {line.split("\t")[0] for line in lines[:-1]} == {"thief", "shared"}
    assert "checked 3 tenants with data: 2" in lines[-1]

    code, out = await _run_check(redis_url, RETRAINQ_SHARED_DATA_PREFIXES=json.dumps(["common/"]))
    assert code == 1, out
    assert [line.split("\t")[0] for line in out.splitlines()[:-1]] == ["thief"]


async def test_check_data_paths_exits_0_when_every_path_is_own(
    redis: aioredis.Redis, redis_url: str
) -> None:
    records = TenantRecords(redis, Keys())
    await records.create_tenant(Tenant(id="own", target=TARGET, data_path="data/own/v2.csv"))
    code, out = await _run_check(redis_url)
    assert code == 0, out
    assert "checked 1 tenants with data: 0" in out


def test_a_shared_prefix_under_tenant_roots_stops_the_worker() -> None:
    """A setting that would open tenants' blobs to each other is refused at start."""
    done = subprocess.run(
        [console_script("retrainq-worker"), "check-data-paths"],
        env={"RETRAINQ_SHARED_DATA_PREFIXES": '["data/"]', "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    assert done.returncode == 2
    assert "shared_data_prefixes" in done.stderr
    assert "may not lie under data/" in done.stderr
