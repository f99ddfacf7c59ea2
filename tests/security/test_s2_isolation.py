"""S2: tenant isolation beyond test_api_auth's matrix — every route the app registers, called
with another tenant's key, never succeeds; a read SAS for one tenant's blob reads nothing else;
tenant ids with path tricks never reach a blob path."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from azure.storage.blob.aio import ContainerClient
from pydantic import SecretStr
from yarl import URL

from tests.integration.conftest_api import ADMIN, CSV, bearer, onboard
from tests.security.support import report
from worker.blobs import BlobStore, training_data_path
from worker.store import Store

# Routes a tenant key may call with success: they show only the caller (or nothing at all).
# ``GET /v1/runs`` lists the caller's own runs for a tenant key (the leak check still applies).
SELF_ROUTES = {("GET", "/v1/me"), ("GET", "/v1/runs"), ("GET", "/healthz"), ("GET", "/readyz")}
MARKER = "victim-marker-4711"

Client = TestClient[web.Request, web.Application]


async def _status(api: Client, method: str, path: str, key: str) -> int:
    """Status of a bodyless ``method path`` with ``key``."""
    async with api.request(method, path, headers=bearer(key)) as answer:
        return answer.status


def _registered_routes(client: Client) -> list[tuple[str, str]]:
    """(method, path template) of every JSON route of the app (not HEAD, not the UI files)."""
    found = set()
    assert isinstance(client.server, TestServer)
    assert client.server.app is not None
    for route in client.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or not path or not path.startswith(("/v1/", "/h", "/r")):
            continue
        found.add((route.method, path))
    return sorted(found)


async def test_every_route_with_another_tenant_s_ids_fails(
    api: Client, redis: aioredis.Redis
) -> None:
    """Each registered route with the victim's ids: 0 successes, nothing of the victim shown,
    and the same status as for ids that do not exist (no existence oracle)."""
    victim = await onboard(
        api, "victim", display_name=MARKER, data_path="data/victim/a.csv", schedule="0 3 * * *"
    )
    intruder = await onboard(api, "intruder")
    batch = await (
        await api.post("/v1/batches", json={"tenant_ids": ["victim"]}, headers=ADMIN)
    ).json()
    fleet_schedule = await api.put(
        "/v1/schedules/nightly", json={"cron": "0 1 * * *"}, headers=ADMIN
    )
    assert fleet_schedule.status == 200
    ids = {
        "tenant_id": "victim",
        "run_id": victim["run"]["id"],
        "batch_id": batch["batch_id"],
        "name": "nightly",
    }
    ghosts = {"tenant_id": "ghost", "run_id": "0" * 32, "batch_id": "0" * 32, "name": "ghost"}
    routes = _registered_routes(api)
    results: dict[str, int] = {}
    oracle: dict[str, tuple[int, int]] = {}
    leaked: list[str] = []
    for method, template in routes:
        path = template.format(**ids)
        ghost_status = await _status(api, method, template.format(**ghosts), intruder["api_key"])
        body: Any = {"display_name": "pwned"} if method in ("PATCH", "POST", "PUT") else None
        kwargs: dict[str, Any] = {"headers": bearer(intruder["api_key"])}
        if path.endswith("/data"):
            kwargs["data"] = CSV
        elif path.endswith("/schedules/nightly") and method == "PUT":
            kwargs["json"] = {"cron": "* * * * *"}
        elif body is not None:
            kwargs["json"] = body
        async with api.request(method, path, **kwargs) as answer:
            results[f"{method} {template}"] = answer.status
            text = await answer.text()
        if MARKER in text or "data/victim/a.csv" in text or "0 3 * * *" in text:
            leaked.append(f"{method} {template}")
        if answer.status != ghost_status:
            oracle[f"{method} {template}"] = (answer.status, ghost_status)
    successes = {
        route: status
        for route, status in results.items()
        if status < 400 and tuple(route.split(" ", 1)) not in SELF_ROUTES
    }
    report(
        "S2-routes",
        routes=len(results),
        successes=len(successes),
        leaks=len(leaked),
        existence_oracles=len(oracle),
        statuses=results,
    )
    assert len(results) >= 20, results
    assert successes == {}
    assert leaked == []
    assert oracle == {}
    # Nothing of the victim changed.
    store = Store(redis)
    found = await store.get_tenant("victim")
    assert found is not None
    assert (found.deleted, found.display_name, found.data_version) == (False, MARKER, 0)
    assert found.schedule == "0 3 * * *"
    run = await store.get_run(victim["run"]["id"])
    assert run is not None
    assert not run.cancel_requested
    kept = await (await api.get("/v1/schedules/nightly", headers=ADMIN)).json()
    assert kept["cron"] == "0 1 * * *"


@pytest.fixture
async def tenant_blobs(blob_connection_string: str) -> Any:
    """A blob store with one training CSV for each of tenants ``alpha`` and ``beta``."""
    async with BlobStore(SecretStr(blob_connection_string), "isolation", retry_total=0) as blobs:
        await blobs.ensure_container()
        await blobs.upload(training_data_path("alpha", "v1"), b"a,b\n1,2\n")
        await blobs.upload(training_data_path("beta", "v1"), b"secret,beta\n3,4\n")
        yield blobs


async def test_a_read_sas_reads_only_its_blob(tenant_blobs: BlobStore) -> None:
    """alpha's SAS reads alpha's blob; beta's blob, the listing and writes are refused."""
    location = tenant_blobs.read_sas(training_data_path("alpha", "v1"), timedelta(minutes=5))
    assert location.sas_blob_token is not None
    sas = location.sas_blob_token.get_secret_value()
    base = location.base_location.rstrip("/")
    container = tenant_blobs.container
    attempts = {
        "own blob": ("GET", f"{base}/{container}/data/alpha/v1.csv{sas}"),
        "other tenant's blob": ("GET", f"{base}/{container}/data/beta/v1.csv{sas}"),
        "other tenant's blob via ..": ("GET", f"{base}/{container}/data/alpha/../beta/v1.csv{sas}"),
        "list container": ("GET", f"{base}/{container}{sas}&restype=container&comp=list"),
        "list account": ("GET", f"{base}{sas}&comp=list"),
        "overwrite own blob": ("PUT", f"{base}/{container}/data/alpha/v1.csv{sas}"),
        "delete own blob": ("DELETE", f"{base}/{container}/data/alpha/v1.csv{sas}"),
    }
    statuses: dict[str, int] = {}
    bodies: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        for name, (method, url) in attempts.items():
            headers = {"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {}
            async with http.request(
                method,
                URL(url, encoded=True),
                data=b"x" if method == "PUT" else None,
                headers=headers,
            ) as answer:
                statuses[name] = answer.status
                bodies[name] = await answer.read()
    refused = {name: s for name, s in statuses.items() if name != "own blob" and s >= 400}
    report("S2-blobs", attempts=len(attempts), statuses=statuses, refused=len(refused))
    assert statuses["own blob"] == 200
    assert bodies["own blob"] == b"a,b\n1,2\n"
    assert len(refused) == len(attempts) - 1, statuses
    assert all(b"secret,beta" not in body for body in bodies.values())
    assert await tenant_blobs.download(training_data_path("alpha", "v1")) == b"a,b\n1,2\n"


def test_blob_paths_refuse_tricks(tenant_blobs: BlobStore) -> None:
    """Paths and SAS requests with ``..``, empty segments or odd tenant ids raise ValueError."""
    for tenant_id in ("../beta", "ALPHA", "a" * 64, "alpha/../beta", "", "-x"):
        with pytest.raises(ValueError, match="tenant id"):
            training_data_path(tenant_id, "v1")
    for path in ("data/alpha/../beta/v1.csv", "/data/beta/v1.csv", "data//beta/v1.csv", ".."):
        with pytest.raises(ValueError, match="blob path"):
            tenant_blobs.read_sas(path, timedelta(minutes=5))


TRICKY_IDS = [
    "..%2Fvictim",
    "%2E%2E%2Fvictim",
    "victim%2F..%2Fintruder",
    "victim%2Fv9",
    "VICTIM",
    "Victim",
    "a" * 64,
    "victim%00",
    "victim%20",
    "%76ictim%2F",
    ".",
    "..",
]


async def test_tricky_tenant_ids_never_reach_blob_paths(
    api: Client, blob_connection_string: str
) -> None:
    """Admin uploads and retrains to tricky ids answer 404/422 (405 where URL normalisation
    turns ``.`` into another route); no blob appears outside ``data/<valid id>/``."""
    await onboard(api, "victim")
    assert (await api.put("/v1/tenants/victim/data", data=CSV, headers=ADMIN)).status == 200
    # Other tests share the container (archive parts, say): only the blobs this test's
    # requests wrote are judged.
    before = set(await _blob_names(blob_connection_string))
    statuses: dict[str, int] = {}
    for raw in TRICKY_IDS:
        for method, suffix in (("PUT", "/data"), ("POST", "/retrains"), ("GET", "")):
            url = URL(f"/v1/tenants/{raw}{suffix}", encoded=True)
            data = CSV if suffix == "/data" else None
            async with api.request(method, url, data=data, headers=ADMIN) as answer:
                statuses[f"{method} {raw}{suffix}"] = answer.status
    for tenant_id in ("VICTIM", "../victim", "a" * 64, "victim/x"):
        body = {"id": tenant_id, "target": {"kind": "new", "template_service": "t"}}
        answer = await api.post("/v1/tenants", json=body, headers=ADMIN)
        statuses[f"POST /v1/tenants id={tenant_id[:20]}"] = answer.status
    names = [n for n in await _blob_names(blob_connection_string) if n not in before]
    stray = [n for n in names if not re.fullmatch(r"data/[a-z0-9][a-z0-9-]{0,62}/v\d+\.csv", n)]
    unexpected = {k: s for k, s in statuses.items() if s not in (404, 405, 422)}
    report(
        "S2-path-tricks",
        requests=len(statuses),
        unexpected=unexpected,
        blobs=len(names),
        stray_blobs=stray,
    )
    assert unexpected == {}
    assert stray == []
    assert "data/victim/v1.csv" in before  # the legitimate upload landed where it should


async def _blob_names(connection_string: str) -> list[str]:
    """Names of the blobs in the API tests' container."""
    async with ContainerClient.from_connection_string(
        connection_string, "api-tests", retry_total=0
    ) as container:
        return [blob.name async for blob in container.list_blobs()]
