"""Secret canaries: the whole pipeline (API subprocess, real workers, emulator, Azurite) runs with
distinctive secrets — an admin key, the storage account key (inside the connection string), the
emulator's workspace token, ARM token and BES keys, tenant keys issued at onboarding — through
successful and failing retrains and refused credentials. Afterwards no log line (API, workers),
no Redis key or value and no API error body holds any of them, nor any SAS signature."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from producer.devtools.emulated import predictive_service_ids, worker_env
from producer.devtools.processes import AZURITE_KEY
from tests.integration.fleet import RESOURCE, Fleet, close_fleet, dump, open_fleet
from tests.security.support import FULL, ServedApi, report, size
from worker.schemas import RunState

GOOD_TENANTS = size(3, 12)
FAILING_TENANTS = size(1, 4)
# A SAS signature that was not masked: ``sig=`` followed by anything but the mask.
RAW_SIG = re.compile(rb"sig=(?!\*\*\*)[A-Za-z0-9%+/=]{8,}")

pytestmark = pytest.mark.timeout(900 if FULL else 240)


def _secret_strings(config: Any) -> Iterator[str]:
    """Every value under a key or token field of the emulator's config (its credentials)."""
    if isinstance(config, dict):
        for name, value in config.items():
            if isinstance(value, str) and re.search(r"(?i)(key|token)$", name) and len(value) >= 8:
                yield value
            else:
                yield from _secret_strings(value)
    elif isinstance(config, list):
        for item in config:
            yield from _secret_strings(item)


@pytest.fixture
async def fleet(
    redis_url: str, blob_connection_string: str, emulator_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """A fleet on flushed Redis and a reset, fault-free emulator."""
    opened = await open_fleet(redis_url, blob_connection_string, emulator_url, tmp_path)
    await opened.emulator("PUT", "/_emulator/faults", {})
    try:
        yield opened
    finally:
        opened.stop_workers()
        await opened.emulator("PUT", "/_emulator/faults", {})
        await close_fleet(opened)


async def _redis_values(url: str) -> AsyncIterator[tuple[bytes, bytes]]:
    """(key, value bytes) of every key in Redis, whatever its type."""
    client = aioredis.Redis.from_url(url, decode_responses=False)
    try:
        async for key in client.scan_iter(count=1000):
            kind = (await client.type(key)).decode()
            parts: list[bytes] = []
            if kind == "string":
                parts = [await client.get(key) or b""]
            elif kind == "hash":
                for field, value in (await client.hgetall(key)).items():
                    parts += [field, value]
            elif kind == "list":
                parts = await client.lrange(key, 0, -1)
            elif kind == "set":
                parts = list(await client.smembers(key))
            elif kind == "zset":
                parts = [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                for _, fields in await client.xrange(key):
                    for field, value in fields.items():
                        parts += [field, value]
            yield key, b"\n".join(parts)
    finally:
        await client.aclose()


async def test_no_secret_reaches_logs_redis_or_error_bodies(
    fleet: Fleet, served_api: Callable[..., ServedApi], redis_url: str
) -> None:
    """0 occurrences of any canary or raw SAS signature in logs, Redis and error bodies."""
    admin_key = "canary-admin-" + secrets.token_hex(16)
    wrong_key = "rtq_canary-wrong-" + secrets.token_hex(12)
    env = worker_env(fleet.config, fleet.emulator_url)
    api = served_api(
        RETRAINQ_ADMIN_KEYS=json.dumps([admin_key]),
        RETRAINQ_BLOB__CONTAINER="retrainq",
        **env,
    )
    admin = {"Authorization": f"Bearer {admin_key}"}
    fleet.start_workers(2)
    service_id = predictive_service_ids(fleet.config)["bike-rental"]
    tenant_keys: list[str] = []
    error_bodies: list[bytes] = []
    run_ids: list[str] = []
    total = GOOD_TENANTS + FAILING_TENANTS
    async with aiohttp.ClientSession(api.url) as http:

        async def call(method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
            async with http.request(method, path, headers=headers, **kw) as answer:
                body = await answer.read()
                if answer.status >= 400:
                    error_bodies.append(body)
                return answer.status, json.loads(body) if body else None

        for index in range(total):
            tenant_id = f"canary-{index:02d}"
            target = {"kind": "classic", "web_service_id": service_id, "resource_name": RESOURCE}
            body = {"id": tenant_id, "target": target, "train": False}
            status, created = await call("POST", "/v1/tenants", admin, json=body)
            assert status == 201, created
            key = created["api_key"]
            tenant_keys.append(key)
            own = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
            status, _ = await call(
                "PUT", f"/v1/tenants/{tenant_id}/data", own, data=fleet.csv(tenant_id, 120)
            )
            assert status == 200
            if index == GOOD_TENANTS:
                # The rest fail remotely: every BES job the emulator runs from here fails.
                await fleet.emulator("PUT", "/_emulator/faults", {"bes_job_failure_rate": 1.0})
            status, accepted = await call("POST", f"/v1/tenants/{tenant_id}/retrains", own)
            assert status == 202, accepted
            run_ids.append(accepted["run"]["id"])
            if index < GOOD_TENANTS:
                await fleet.wait_terminal(run_ids[-1:], within=120)
        runs = await fleet.wait_terminal(run_ids, within=180)
        # Refused credentials and bad input, with secrets in the request.
        for headers in (
            {"Authorization": f"Bearer {wrong_key}"},
            {"Authorization": f"Bearer {admin_key}x"},
            {"Authorization": f"Basic {admin_key}"},
            {"Authorization": f"Bearer {tenant_keys[0]} {admin_key}"},
        ):
            await call("GET", "/v1/tenants", headers)
        await call("GET", "/v1/tenants", {"Authorization": f"Bearer {tenant_keys[0]}"})
        await call(
            "PATCH",
            "/v1/tenants/canary-00",
            admin,
            json={"data_path": f"AccountKey={AZURITE_KEY}", "display_name": admin_key * 10},
        )
        await call("POST", "/v1/tenants", admin, data=f'{{"id": "{tenant_keys[1]}"}}')
        await call("DELETE", "/v1/tenants/canary-00", admin)
        await call("GET", "/v1/me", {"Authorization": f"Bearer {tenant_keys[0]}"})
    fleet.stop_workers()
    api.process.stop()

    canaries = {
        "admin key": admin_key,
        "wrong key": wrong_key,
        "storage account key": AZURITE_KEY,
        **{f"tenant key {i}": k for i, k in enumerate(tenant_keys)},
        **{
            f"emulator secret {i}": s
            for i, s in enumerate(sorted(set(_secret_strings(fleet.config))))
        },
    }
    needles = {name: value.encode() for name, value in canaries.items()}
    found: dict[str, list[str]] = {}
    lines = 0
    log_files = [api.log_path, *sorted(fleet.log_dir.glob("worker-*.log"))]
    for path in log_files:
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            lines += 1
            hits = [n for n, v in needles.items() if v in line]
            if RAW_SIG.search(line):
                hits.append("SAS signature")
            for hit in hits:
                found.setdefault(hit, []).append(f"{path.name}:{number}")
    values = 0
    async for key, value in _redis_values(redis_url):
        values += 1
        for name, needle in needles.items():
            if needle in key or needle in value:
                found.setdefault(name, []).append(f"redis {key!r}")
        if RAW_SIG.search(value):
            found.setdefault("SAS signature", []).append(f"redis {key!r}")
    for number, error_body in enumerate(error_bodies):
        for name, needle in needles.items():
            if needle in error_body:
                found.setdefault(name, []).append(f"error body {number}")
    succeeded = sum(r.state is RunState.SUCCEEDED for r in runs)
    failed = sum(r.state is RunState.FAILED for r in runs)
    report(
        "S5-canaries",
        canaries=len(canaries),
        log_files=len(log_files),
        log_lines_scanned=lines,
        redis_values_scanned=values,
        error_bodies_scanned=len(error_bodies),
        runs_succeeded=succeeded,
        runs_failed=failed,
        occurrences=sum(len(v) for v in found.values()),
        found={k: v[:3] for k, v in found.items()},
    )
    # The pipeline really ran with the secrets: runs deployed and failed, errors were logged.
    assert succeeded == GOOD_TENANTS, dump([r.error for r in runs])
    assert failed == FAILING_TENANTS, dump([r.error for r in runs])
    assert len(canaries) >= 6 + total
    assert lines > 50
    assert values > 20
    assert found == {}
