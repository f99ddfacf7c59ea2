"""ARM webServices (PROTOCOL.md §6) over raw HTTP: PUT/GET/PATCH/DELETE, listKeys, list, async."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from .conftest import Emu, bearer

A = "?api-version=2017-01-01"


async def template(emu: Emu) -> dict[str, Any]:
    """The bike-rental template service as GET shows it."""
    status, body = await emu.json(
        "GET", f"{emu.arm_base}/bike-rental-template{A}", headers=emu.arm_auth
    )
    assert status == 200
    assert isinstance(body, dict)
    return body


async def settle(emu: Emu, name: str) -> dict[str, Any]:
    """Poll GET until provisioning leaves Provisioning."""
    for _ in range(200):
        _, body = await emu.json("GET", f"{emu.arm_base}/{name}{A}", headers=emu.arm_auth)
        if body["properties"]["provisioningState"] != "Provisioning":
            return dict(body)
        await asyncio.sleep(0.02)
    raise AssertionError("provisioning did not settle")


def with_asset_uri(service: dict[str, Any], uri: str) -> dict[str, Any]:
    """A PUT body from ``service`` with its trained-model asset at ``uri``."""
    body = {"location": service["location"], "properties": copy.deepcopy(service["properties"])}
    for asset in body["properties"]["assets"].values():
        if asset["name"].endswith("[trained model]"):
            asset["locationInfo"] = {"uri": uri}
    return body


async def test_get_has_no_keys_and_a_swagger_location(emu: Emu) -> None:
    """GET answers the WebService shape without keys or storage key; swaggerLocation serves."""
    body = await template(emu)
    assert body["type"] == "Microsoft.MachineLearning/webServices"
    props = body["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert "keys" not in props
    assert props["storageAccount"]["key"] is None
    assert props["packageType"] == "Graph"
    assets = [a for a in props["assets"].values() if a["type"] == "Resource"]
    assert assets[0]["name"] == "Bike Rental [trained model]"
    status, swagger = await emu.json("GET", props["swaggerLocation"])
    assert (status, swagger["swagger"]) == (200, "2.0")


async def test_put_create_then_update(emu: Emu) -> None:
    """First PUT answers 201, the next 200; both Provisioning with an async-operation URL."""
    body = with_asset_uri(
        await template(emu),
        (await template(emu))["properties"]["assets"]["asset1"]["locationInfo"]["uri"],
    )
    async with emu.http.put(f"{emu.arm_base}/svc1{A}", json=body, headers=emu.arm_auth) as r:
        assert r.status == 201
        assert (await r.json())["properties"]["provisioningState"] == "Provisioning"
        assert "Azure-AsyncOperation" in r.headers
    assert (await settle(emu, "svc1"))["properties"]["provisioningState"] == "Succeeded"
    async with emu.http.put(f"{emu.arm_base}/svc1{A}", json=body, headers=emu.arm_auth) as r:
        assert r.status == 200
    assert (await settle(emu, "svc1"))["properties"]["provisioningState"] == "Succeeded"
    stats = await emu.stats()
    assert stats["arm_web_services"]["retrainq/svc1"]["puts"] == 2


async def test_bad_asset_fails_and_keeps_previous_model(emu: Emu) -> None:
    """A PUT whose asset cannot be loaded ends Failed (operation too); old model still scores."""
    good = with_asset_uri(
        await template(emu),
        (await template(emu))["properties"]["assets"]["asset1"]["locationInfo"]["uri"],
    )
    await emu.json("PUT", f"{emu.arm_base}/svc2{A}", json=good, headers=emu.arm_auth)
    service = await settle(emu, "svc2")
    _, keys = await emu.json("GET", f"{emu.arm_base}/svc2/listKeys{A}", headers=emu.arm_auth)
    api = service["properties"]["swaggerLocation"].removesuffix("/swagger.json")
    request = {
        "Inputs": {
            "input1": [
                {
                    "yr": "0",
                    "holiday": "0",
                    "workingday": "1",
                    "temp": "0.5",
                    "atemp": "0.5",
                    "hum": "0.5",
                    "windspeed": "0.1",
                    "season": "2",
                    "mnth": "5",
                    "hr": "8",
                    "weekday": "2",
                    "weathersit": "1",
                }
            ]
        }
    }
    url = f"{api}/execute?api-version=2.0&format=swagger"
    _, before = await emu.json("POST", url, json=request, headers=bearer(keys["primary"]))

    bad = with_asset_uri(service, f"{emu.url}/_emulator/models/missing.ilearner")
    async with emu.http.put(f"{emu.arm_base}/svc2{A}", json=bad, headers=emu.arm_auth) as r:
        assert r.status == 200
        operation_url = r.headers["Azure-AsyncOperation"]
    assert (await settle(emu, "svc2"))["properties"]["provisioningState"] == "Failed"
    _, operation = await emu.json("GET", operation_url, headers=emu.arm_auth)
    assert operation["status"] == "Failed"
    assert operation["error"]["code"]
    status, after = await emu.json("POST", url, json=request, headers=bearer(keys["primary"]))
    assert status == 200
    assert after == before


async def test_patch_only_assets(emu: Emu) -> None:
    """PATCH with properties.assets re-provisions; other properties answer 400."""
    status, _ = await emu.json(
        "PATCH",
        f"{emu.arm_base}/bike-rental-template{A}",
        json={"properties": {"title": "new"}},
        headers=emu.arm_auth,
    )
    assert status == 400
    service = await template(emu)
    assets = service["properties"]["assets"]
    status, body = await emu.json(
        "PATCH",
        f"{emu.arm_base}/bike-rental-template{A}",
        json={"properties": {"assets": assets}},
        headers=emu.arm_auth,
    )
    assert (status, body["properties"]["provisioningState"]) == (200, "Provisioning")
    assert (await settle(emu, "bike-rental-template"))["properties"][
        "provisioningState"
    ] == "Succeeded"


async def test_list_delete_and_auth(emu: Emu) -> None:
    """List by resource group; DELETE 200 then 204; wrong token 401; bad api-version 400."""
    status, listing = await emu.json("GET", f"{emu.arm_base}{A}", headers=emu.arm_auth)
    assert status == 200
    assert {s["name"] for s in listing["value"]} == {"bike-rental-template", "churn-template"}
    assert (await emu.json("DELETE", f"{emu.arm_base}/churn-template{A}", headers=emu.arm_auth))[
        0
    ] == 200
    assert (await emu.json("DELETE", f"{emu.arm_base}/churn-template{A}", headers=emu.arm_auth))[
        0
    ] == 204
    status, body = await emu.json("GET", f"{emu.arm_base}/churn-template{A}", headers=emu.arm_auth)
    assert (status, body["error"]["code"]) == (404, "ResourceNotFound")
    status, body = await emu.json("GET", f"{emu.arm_base}{A}", headers=bearer("nope"))
    assert (status, body["error"]["code"]) == (401, "AuthenticationFailed")
    status, body = await emu.json(
        "GET", f"{emu.arm_base}?api-version=1999-01-01", headers=emu.arm_auth
    )
    assert (status, body["error"]["code"]) == (400, "InvalidApiVersionParameter")
    status, _ = await emu.json(
        "GET",
        f"{emu.arm_base}{A}".replace("/resourceGroups/retrainq/", "/resourceGroups/other/"),
        headers=emu.arm_auth,
    )
    assert status == 404


async def test_put_without_trained_model_asset_is_400(emu: Emu) -> None:
    """A service definition without a '[trained model]' Resource asset is refused."""
    body = {"location": "southcentralus", "properties": {"packageType": "Graph", "assets": {}}}
    status, answer = await emu.json(
        "PUT", f"{emu.arm_base}/empty{A}", json=body, headers=emu.arm_auth
    )
    assert (status, answer["error"]["code"]) == (400, "BadRequest")
