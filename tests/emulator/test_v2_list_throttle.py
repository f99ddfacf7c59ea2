"""The emulator's v2 job list (filters, pages) and ARM budgets (headers, 429 + Retry-After)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from emulator.app import create_app
from emulator.config import EmulatorSettings, default_config
from emulator.v2.state import V2_STATE
from producer.devtools.processes import free_port
from tests.azureml_v2 import API
from tests.emulator.conftest import Blobs, Emu
from tests.emulator.test_v2_jobs import job_body, put, v2_stats, with_datastore, ws

READS = "x-ms-ratelimit-remaining-subscription-reads"
WRITES = "x-ms-ratelimit-remaining-subscription-writes"


@pytest.fixture
async def small_pages() -> AsyncIterator[Emu]:
    """The emulator with list pages of two jobs."""
    config = default_config()
    port = free_port()
    settings = EmulatorSettings(_env_file=None, host="127.0.0.1", port=port, seed=7)
    app = create_app(config, settings)
    app[V2_STATE].config.list_page_size = 2
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield Emu(url=f"http://127.0.0.1:{port}", http=http, config=config)
    await server.close()


def tagged(tags: dict[str, str], **properties: str) -> dict[str, Any]:
    """A job body with these tags and user properties."""
    body = job_body()
    body["properties"]["tags"] = tags
    body["properties"]["properties"] = properties
    return body


async def list_all(emu: Emu, query: str) -> tuple[list[str], int]:
    """Names of every listed job, following nextLink; and how many pages that took."""
    url: str | None = f"{ws(emu)}/jobs?{API}&{query}"
    names: list[str] = []
    pages = 0
    while url is not None:
        status, body = await emu.json("GET", url, headers=emu.arm_auth)
        assert status == 200, body
        names += [job["name"] for job in body["value"]]
        url = body.get("nextLink")
        pages += 1
    return names, pages


async def test_the_job_list_filters_by_tag_key_and_properties_and_pages(
    small_pages: Emu, blobs: Blobs
) -> None:
    """tag keeps jobs with that key (or key=value), properties k=v too, oldest first, two a
    page with an absolute nextLink; archived jobs only with listViewType All/ArchivedOnly."""
    emu = small_pages
    await emu.put_settings(min_job_seconds=30)
    await with_datastore(emu, blobs)
    for index in range(5):
        window = "w1" if index < 4 else "w2"
        tags = {f"retrainq-poll-{window}": window}
        assert (await put(emu, f"rq-t1-{index}", tagged(tags, batch=f"b{index % 2}")))[0] == 201
    archived = tagged({"retrainq-poll-w1": "w1"})
    archived["properties"]["isArchived"] = True
    assert (await put(emu, "rq-t1-old", archived))[0] == 201

    names, pages = await list_all(emu, "tag=retrainq-poll-w1")
    assert (names, pages) == ([f"rq-t1-{i}" for i in range(4)], 2)
    assert (await list_all(emu, "tag=retrainq-poll-w1=w2"))[0] == []
    assert (await list_all(emu, "tag=retrainq-poll-w1&properties=batch=b1"))[0] == [
        "rq-t1-1",
        "rq-t1-3",
    ]
    assert "rq-t1-old" in (await list_all(emu, "tag=retrainq-poll-w1&listViewType=All"))[0]
    assert (await list_all(emu, "listViewType=ArchivedOnly"))[0] == ["rq-t1-old"]
    status, body = await emu.json("GET", f"{ws(emu)}/jobs?{API}&tag=none", headers=emu.arm_auth)
    assert (status, body) == (200, {"value": []})
    status, body = await emu.json("GET", f"{ws(emu)}/jobs?{API}&$skip=x", headers=emu.arm_auth)
    assert status == 400
    listed = (
        await emu.json("GET", f"{ws(emu)}/jobs?{API}&tag=retrainq-poll-w2", headers=emu.arm_auth)
    )[1]
    assert listed["value"][0]["properties"]["status"] in ("NotStarted", "Queued", "Running")
    assert (await v2_stats(emu))["calls"]["job_list_page"] >= 8


async def test_answers_count_down_the_principals_budget_and_an_empty_bucket_is_429(
    emu: Emu, blobs: Blobs
) -> None:
    """Each read takes a token (the header says how many are left); with no refill the read
    after the last token answers 429 TooManyRequests with Retry-After and is not processed;
    writes have their own bucket. A PUT of the budgets refills them."""
    await with_datastore(emu, blobs)
    budgets = {
        "reads": {"capacity": 3, "per_second": 0},
        "writes": {"capacity": 5, "per_second": 0},
    }
    status, _ = await emu.json("PUT", f"{emu.url}/_emulator/v2/throttle", json=budgets)
    assert status == 200
    seen = []
    for _ in range(3):
        async with emu.http.get(f"{ws(emu)}/jobs?{API}", headers=emu.arm_auth) as reply:
            assert reply.status == 200
            seen.append(reply.headers[READS])
    assert seen == ["2", "1", "0"]
    async with emu.http.get(f"{ws(emu)}/jobs/rq-t1-1?{API}", headers=emu.arm_auth) as reply:
        assert reply.status == 429
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.headers[READS] == "0"
        assert (await reply.json())["error"]["code"] == "TooManyRequests"
    async with emu.http.put(
        f"{ws(emu)}/jobs/rq-t1-1?{API}", json=job_body(), headers=emu.arm_auth
    ) as reply:
        assert reply.status == 201
        assert reply.headers[WRITES] == "4"
    _, snapshot = await emu.json("GET", f"{emu.url}/_emulator/v2/throttle")
    assert snapshot["taken"]["reads"] == 3
    assert snapshot["refused"]["reads"] == 1
    assert (await v2_stats(emu))["calls"].get("job_get", 0) == 0  # the refused GET ran nothing
    await emu.json("PUT", f"{emu.url}/_emulator/v2/throttle", json=budgets)
    async with emu.http.get(f"{ws(emu)}/jobs/rq-t1-1?{API}", headers=emu.arm_auth) as reply:
        assert (reply.status, reply.headers[READS]) == (200, "2")


async def test_the_default_budgets_are_the_documented_arm_buckets(emu: Emu) -> None:
    """250 reads at 25/s, 200 writes and deletes at 10/s; a wrong token spends nothing."""
    _, snapshot = await emu.json("GET", f"{emu.url}/_emulator/v2/throttle")
    config = snapshot["config"]
    assert config["enabled"] is True
    assert config["reads"] == {"capacity": 250, "per_second": 25.0}
    assert config["writes"] == config["deletes"] == {"capacity": 200, "per_second": 10.0}
    bad = {"Authorization": "Bearer nope"}
    async with emu.http.get(f"{ws(emu)}/jobs?{API}", headers=bad) as reply:
        assert reply.status == 401
    async with emu.http.get(f"{ws(emu)}/jobs?{API}", headers=emu.arm_auth) as reply:
        assert reply.headers[READS] == "249"
