"""The emulator's v2 model registry: containers, versions, their PUT rules, lists, faults."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import aiohttp

from tests.azureml_v2 import API
from tests.emulator.conftest import Blobs, Emu
from tests.emulator.test_v2_jobs import v2_stats, with_datastore, ws


def version(path: str = "models/t1/r1.ilearner", **tags: str) -> dict[str, Any]:
    """A model version body on datastore ``store``."""
    return {
        "properties": {
            "modelUri": f"azureml://datastores/store/paths/{path}",
            "modelType": "CustomModel",
            "tags": tags,
            "properties": {"retrainq.seq": "1"},
        }
    }


async def call(emu: Emu, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One ARM call under the v2 workspace."""
    url = f"{ws(emu)}/{path}{'&' if '?' in path else '?'}{API}"
    return await emu.json(method, url, json=body, headers=emu.arm_auth)


async def test_a_version_put_creates_it_and_its_container_and_repeats_safely(
    emu: Emu, blobs: Blobs
) -> None:
    """201 then 200 for the same body (tags may change); another modelUri is 400 Immutable;
    the container exists without a PUT of its own; a URI on no datastore is 400."""
    await with_datastore(emu, blobs)
    status, body = await call(emu, "PUT", "models/rq-t1/versions/1", version(run="r1"))
    assert (status, body["name"], body["properties"]["provisioningState"]) == (
        201,
        "1",
        "Succeeded",
    )
    assert (await call(emu, "PUT", "models/rq-t1/versions/1", version(run="r1")))[0] == 200
    retagged = version(run="r1", note="kept")
    status, body = await call(emu, "PUT", "models/rq-t1/versions/1", retagged)
    assert (status, body["properties"]["tags"]["note"]) == (200, "kept")
    status, body = await call(emu, "PUT", "models/rq-t1/versions/1", version("models/t1/r2"))
    assert (status, body["error"]["code"], body["error"]["details"][0]["code"]) == (
        400,
        "UserError",
        "Immutable",
    )
    status, container = await call(emu, "GET", "models/rq-t1")
    assert (status, container["properties"]["latestVersion"]) == (200, "1")
    assert container["properties"]["nextVersion"] == "2"
    elsewhere = copy.deepcopy(version())
    elsewhere["properties"]["modelUri"] = "azureml://datastores/none/paths/x"
    assert (await call(emu, "PUT", "models/rq-t1/versions/2", elsewhere))[0] == 400
    stats = (await v2_stats(emu))["models"]["rq-t1"]["versions"]["1"]
    assert (stats["puts_unchanged"], stats["puts_refused"]) == (2, 1)


async def test_container_tags_are_replaced_by_put_and_their_changes_kept(
    emu: Emu, blobs: Blobs
) -> None:
    """A container PUT replaces its tags (201, then 200); the stats keep each distinct tag set
    in order; GET of an unknown container is 404; DELETE is 200, then 204."""
    await with_datastore(emu, blobs)
    for pointer in ("1", "2", "2", "1"):
        body = {"properties": {"tags": {"retrainq-deployed-version": pointer}}}
        status, reply = await call(emu, "PUT", "models/rq-t2", body)
        assert status in (200, 201), reply
    status, reply = await call(emu, "GET", "models/rq-t2")
    assert reply["properties"]["tags"] == {"retrainq-deployed-version": "1"}
    history = (await v2_stats(emu))["models"]["rq-t2"]["tag_history"]
    assert [tags["retrainq-deployed-version"] for tags in history] == ["1", "2", "1"]
    assert (await call(emu, "GET", "models/rq-none"))[0] == 404
    assert (await call(emu, "DELETE", "models/rq-t2"))[0] == 200
    assert (await call(emu, "DELETE", "models/rq-t2"))[0] == 204
    bad = {"properties": {"tags": {"n": 1}}}
    assert (await call(emu, "PUT", "models/rq-t2", bad))[0] == 400


async def test_versions_list_by_tags_view_order_and_pages(emu: Emu, blobs: Blobs) -> None:
    """tags=k=v filters; archived versions only in All/ArchivedOnly; createdtime desc and
    $top; DELETE of a version removes it from the list."""
    await with_datastore(emu, blobs)
    for seq in range(1, 5):
        body = version(f"models/t3/r{seq}", parity="odd" if seq % 2 else "even")
        body["properties"]["isArchived"] = seq == 4
        assert (await call(emu, "PUT", f"models/rq-t3/versions/{seq}", body))[0] == 201

    async def names(query: str) -> list[str]:
        status, body = await call(emu, "GET", f"models/rq-t3/versions?{query}")
        assert status == 200, body
        return [v["name"] for v in body["value"]]

    assert await names("listViewType=ActiveOnly") == ["1", "2", "3"]
    assert await names("listViewType=All&tags=parity=even") == ["2", "4"]
    assert await names("listViewType=ArchivedOnly") == ["4"]
    assert await names("listViewType=All&$orderBy=createdtime desc&$top=2") == ["4", "3"]
    assert (await call(emu, "DELETE", "models/rq-t3/versions/2"))[0] == 200
    assert await names("listViewType=All") == ["1", "3", "4"]
    assert (await call(emu, "GET", "models/rq-t3/versions/2"))[0] == 404


async def test_models_faults_fail_next_and_commit_then_drop(emu: Emu, blobs: Blobs) -> None:
    """fail_next answers 503 and registers nothing; commit_then_drop keeps the version and
    drops the reply, and the repeated PUT meets it (200)."""
    await with_datastore(emu, blobs)
    faults = {"v2_models": {"fail_next": 1, "commit_then_drop": 1}}
    assert (await emu.json("PUT", f"{emu.url}/_emulator/v2/faults", json=faults))[0] == 200
    assert (await call(emu, "PUT", "models/rq-t4/versions/1", version()))[0] == 503
    assert "rq-t4" not in (await v2_stats(emu))["models"]
    with contextlib.suppress(aiohttp.ClientConnectionError):
        await call(emu, "PUT", "models/rq-t4/versions/1", version())
    assert (await call(emu, "PUT", "models/rq-t4/versions/1", version()))[0] == 200
    stats = await v2_stats(emu)
    assert stats["faults"]["models"]["dropped"] == 1
    assert list(stats["models"]["rq-t4"]["versions"]) == ["1"]
