"""Acceptance: a retrain by hand over HTTP deploys the model BES trained, classic and ARM."""

from __future__ import annotations

import asyncio
from typing import Any

from emulator.config import BIKE_RENTAL
from emulator.datagen import bike_rental_csv, bike_rental_rows
from emulator.training import parse_csv, train

from .conftest import SCORING, Blobs, Emu, bearer, wait_for_job

V = "?api-version=2.0"


def table(rows: list[dict[str, str]]) -> dict[str, Any]:
    """An RRS table-format request."""
    columns = list(rows[0])
    values = [[r[c] for c in columns] for r in rows]
    return {
        "Inputs": {"input1": {"ColumnNames": columns, "Values": values}},
        "GlobalParameters": {},
    }


async def score(emu: Emu, api: str, key: str, rows: list[dict[str, str]]) -> list[float]:
    """Scored Labels of ``rows`` from the runtime at ``api``."""
    status, body = await emu.json(
        "POST", f"{api}/execute{V}&details=true", json=table(rows), headers=bearer(key)
    )
    assert status == 200, body
    return [float(r[-1]) for r in body["Results"]["output1"]["value"]["Values"]]


async def run_bes(emu: Emu, blobs: Blobs, csv_text: str, name: str) -> dict[str, Any]:
    """Upload a tenant's CSV, run a BES job on it to Finished; return its Results."""
    await blobs.upload(f"data/{name}.csv", csv_text)
    base, auth = emu.runtime()
    body = {
        "Inputs": {"input1": blobs.ref(f"data/{name}.csv")},
        "Outputs": {
            "output1": blobs.ref(f"models/{name}.ilearner"),
            "output2": blobs.ref(f"models/{name}.eval.csv"),
        },
        "GlobalParameters": {},
    }
    status, job_id = await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)
    assert status == 200
    status, _ = await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth)
    assert status == 200
    result = await wait_for_job(emu, base, auth, job_id)
    assert result["StatusCode"] == "Finished", result["Details"]
    results: dict[str, Any] = result["Results"]
    return results


async def test_classic_retrain_deploys_the_trained_model(emu: Emu, blobs: Blobs) -> None:
    """BES → PATCH an added endpoint with output1 → RRS returns the new model's predictions."""
    data = bike_rental_csv("rentalloc001", 600, seed=11)
    probe = bike_rental_rows("rentalloc001", 30, seed=99)
    _, endpoint = await emu.json(
        "PUT", f"{emu.management()}/endpoints/rentalloc001", json={}, headers=emu.ws_token
    )
    api, key = endpoint["ApiLocation"], endpoint["PrimaryKey"]
    old = await score(emu, api, key, probe)

    results = await run_bes(emu, blobs, data, "loc001")
    model_location = {
        k: results["output1"][k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")
    }
    patch = {"Resources": [{"Name": "Bike Rental [trained model]", "Location": model_location}]}
    status, _ = await emu.json(
        "PATCH", f"{emu.management()}/endpoints/rentalloc001", json=patch, headers=emu.ws_token
    )
    assert status == 200

    new = await score(emu, api, key, probe)
    expected = train(parse_csv(data), BIKE_RENTAL).predict(probe)
    assert new == expected
    assert new != old
    # The default endpoint still serves the old model.
    assert await score(emu, *_default(emu), probe) == old
    _, shown = await emu.json(
        "GET", f"{emu.management()}/endpoints/rentalloc001", headers=emu.ws_token
    )
    assert (
        shown["Resources"][0]["Location"]["RelativeLocation"]
        == results["output1"]["RelativeLocation"]
    )
    stats = await emu.stats()
    assert stats["web_services"][SCORING]["endpoints"]["rentalloc001"]["patches"] == 1


async def test_arm_retrain_deploys_the_trained_model(emu: Emu, blobs: Blobs) -> None:
    """GET template → PUT a tenant service with output1 as its asset → poll → RRS predicts it."""
    data = bike_rental_csv("tenant-arm", 500, seed=12)
    probe = bike_rental_rows("tenant-arm", 20, seed=98)
    results = await run_bes(emu, blobs, data, "arm1")

    status, template = await emu.json(
        "GET", f"{emu.arm_base}/bike-rental-template?api-version=2017-01-01", headers=emu.arm_auth
    )
    assert status == 200
    assert "keys" not in template["properties"]
    old_api = template["properties"]["swaggerLocation"].removesuffix("/swagger.json")
    _, template_keys = await emu.json(
        "GET",
        f"{emu.arm_base}/bike-rental-template/listKeys?api-version=2017-01-01",
        headers=emu.arm_auth,
    )
    old = await score(emu, old_api, template_keys["primary"], probe)

    props = template["properties"]
    asset_id = next(k for k, a in props["assets"].items() if a["name"].endswith("[trained model]"))
    out = results["output1"]
    props["assets"][asset_id]["locationInfo"] = {
        "uri": out["BaseLocation"] + out["RelativeLocation"],
        "credentials": out["SasBlobToken"],
    }
    body = {"location": template["location"], "properties": props}
    async with emu.http.put(
        f"{emu.arm_base}/tenant-arm?api-version=2017-01-01", json=body, headers=emu.arm_auth
    ) as response:
        assert response.status == 201
        created = await response.json()
        operation_url = response.headers["Azure-AsyncOperation"]
    assert created["properties"]["provisioningState"] == "Provisioning"

    for _ in range(200):
        _, operation = await emu.json("GET", operation_url, headers=emu.arm_auth)
        if operation["status"] != "InProgress":
            break
        await asyncio.sleep(0.02)
    assert operation["status"] == "Succeeded"
    _, service = await emu.json(
        "GET", f"{emu.arm_base}/tenant-arm?api-version=2017-01-01", headers=emu.arm_auth
    )
    assert service["properties"]["provisioningState"] == "Succeeded"
    _, keys = await emu.json(
        "GET", f"{emu.arm_base}/tenant-arm/listKeys?api-version=2017-01-01", headers=emu.arm_auth
    )
    api = service["properties"]["swaggerLocation"].removesuffix("/swagger.json")
    new = await score(emu, api, keys["primary"], probe)
    assert new == train(parse_csv(data), BIKE_RENTAL).predict(probe)
    assert new != old
    stats = await emu.stats()
    assert stats["arm_web_services"]["retrainq/tenant-arm"]["puts"] == 1


def _default(emu: Emu) -> tuple[str, str]:
    base, _ = emu.runtime(SCORING)
    return base, emu.service(SCORING).endpoints[0].primary_key
