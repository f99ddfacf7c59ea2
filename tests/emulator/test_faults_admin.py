"""Fault switches and the admin API: fail-next-N, error rate, commit-then-drop, stats, reset."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from .conftest import SCORING, TRAINING, Blobs, Emu, wait_for_job

V = "?api-version=2.0"


def submission(blobs: Blobs, name: str) -> dict[str, Any]:
    """An instant-mode submit body."""
    return {
        "Inputs": {"input1": blobs.ref("data/x.csv")},
        "Outputs": {"output1": blobs.ref(f"models/{name}.ilearner")},
    }


async def put_faults(emu: Emu, faults: dict[str, Any]) -> None:
    """Replace the fault switches."""
    status, _ = await emu.json("PUT", f"{emu.url}/_emulator/faults", json=faults)
    assert status == 200


async def test_fail_next_n_on_submit(emu: Emu, blobs: Blobs) -> None:
    """The first N submits fail with the documented 503 body; then submits work again."""
    await put_faults(emu, {"bes_submit": {"fail_next": 2}})
    base, auth = emu.runtime()
    answers = [
        await emu.json("POST", f"{base}/jobs{V}", json=submission(blobs, f"f{i}"), headers=auth)
        for i in range(3)
    ]
    for status, body in answers[:2]:
        assert status == 503
        assert body["error"]["code"] == "ServiceUnavailable"
        assert body["error"]["details"][0]["code"] == "RequestThrottled"
    assert answers[2][0] == 200
    stats = await emu.stats()
    assert stats["web_services"][TRAINING]["jobs_created"] == 1
    assert stats["faults"]["injected"]["bes_submit"] == 2


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (500, "InternalError")])
async def test_error_status_choice(emu: Emu, status: int, code: str) -> None:
    """fail_next answers with the configured status and error class."""
    await put_faults(emu, {"management": {"fail_next": 1, "error_status": status}})
    answer = await emu.json("GET", f"{emu.management()}/endpoints", headers=emu.ws_token)
    assert (answer[0], answer[1]["error"]["code"]) == (status, code)
    assert (await emu.json("GET", f"{emu.management()}/endpoints", headers=emu.ws_token))[0] == 200


async def test_error_rate_is_deterministic_under_the_seed(emu: Emu) -> None:
    """The same error rate gives the same failure pattern after the switches are reset."""
    patterns = []
    for _ in range(2):
        await put_faults(emu, {"management": {"error_rate": 0.5}})
        pattern = []
        for _ in range(20):
            status, _ = await emu.json("GET", f"{emu.management()}/endpoints", headers=emu.ws_token)
            pattern.append(status)
        patterns.append(pattern)
    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {200, 503}


async def test_commit_then_drop_on_submit(emu: Emu, blobs: Blobs) -> None:
    """The job is created (stats count it) although the client's connection was reset."""
    await put_faults(emu, {"bes_submit": {"commit_then_drop": 1}})
    base, auth = emu.runtime()
    with pytest.raises(aiohttp.ClientConnectionError):
        await emu.json("POST", f"{base}/jobs{V}", json=submission(blobs, "d"), headers=auth)
    stats = await emu.stats()
    assert stats["web_services"][TRAINING]["jobs_created"] == 1
    assert stats["faults"]["dropped"]["bes_submit"] == 1
    status, _ = await emu.json(
        "POST", f"{base}/jobs{V}", json=submission(blobs, "d2"), headers=auth
    )
    assert status == 200


async def test_commit_then_drop_on_patch(emu: Emu) -> None:
    """A PATCH whose reply is dropped has still been applied."""
    _, added = await emu.json(
        "PUT", f"{emu.management()}/endpoints/dropme", json={}, headers=emu.ws_token
    )
    await put_faults(emu, {"management": {"commit_then_drop": 1}})
    patch = {
        "Resources": [
            {"Name": "Bike Rental [trained model]", "Location": added["Resources"][0]["Location"]}
        ]
    }
    with pytest.raises(aiohttp.ClientConnectionError):
        await emu.json(
            "PATCH", f"{emu.management()}/endpoints/dropme", json=patch, headers=emu.ws_token
        )
    stats = await emu.stats()
    assert stats["web_services"][SCORING]["endpoints"]["dropme"]["patches"] == 1


async def test_job_failure_rate(emu: Emu, blobs: Blobs) -> None:
    """With bes_job_failure_rate 1 every started job ends Failed with Details."""
    await emu.put_settings(instant=True)
    await put_faults(emu, {"bes_job_failure_rate": 1.0})
    base, auth = emu.runtime()
    _, job_id = await emu.json("POST", f"{base}/jobs{V}", json=submission(blobs, "j"), headers=auth)
    await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth)
    result = await wait_for_job(emu, base, auth, job_id)
    assert result["StatusCode"] == "Failed"
    assert "injected" in result["Details"]


async def test_latency_is_added(emu: Emu) -> None:
    """latency_seconds delays the answer."""
    import time

    await put_faults(emu, {"rrs": {"latency_seconds": 0.3}})
    base, auth = emu.runtime(SCORING)
    began = time.monotonic()
    await emu.json("POST", f"{base}/execute{V}", json={"Inputs": {}}, headers=auth)
    assert time.monotonic() - began >= 0.3


async def test_reset_drops_jobs_endpoints_services_and_faults(emu: Emu, blobs: Blobs) -> None:
    """POST /_emulator/reset returns to the config and zeroes the counters."""
    base, auth = emu.runtime()
    _, job_id = await emu.json("POST", f"{base}/jobs{V}", json=submission(blobs, "r"), headers=auth)
    await emu.json("PUT", f"{emu.management()}/endpoints/extra", json={}, headers=emu.ws_token)
    await put_faults(emu, {"rrs": {"fail_next": 5}})
    await emu.put_settings(min_job_seconds=3)
    status, _ = await emu.json("POST", f"{emu.url}/_emulator/reset")
    assert status == 200
    stats = await emu.stats()
    assert stats["web_services"][TRAINING]["jobs_created"] == 0
    assert list(stats["web_services"][SCORING]["endpoints"]) == ["default"]
    assert stats["faults"]["remaining"]["rrs"]["fail_next"] == 0
    assert (await emu.json("GET", f"{base}/jobs/{job_id}{V}", headers=auth))[0] == 404
    _, settings = await emu.json("GET", f"{emu.url}/_emulator/settings")
    assert settings["min_job_seconds"] == 0
    assert set(stats["arm_web_services"]) == {
        "retrainq/bike-rental-template",
        "retrainq/churn-template",
    }


async def test_config_and_settings_endpoints(emu: Emu) -> None:
    """GET /_emulator/config shows keys; PUT settings validates and merges."""
    _, config = await emu.json("GET", f"{emu.url}/_emulator/config")
    assert (
        config["workspaces"][0]["authorization_token"]
        == emu.config.workspaces[0].authorization_token
    )
    assert config["arm"]["token"] == emu.config.arm.token
    assert config["public_url"] == emu.url
    status, _ = await emu.json("PUT", f"{emu.url}/_emulator/settings", json={"min_job_seconds": -1})
    assert status == 400
    status, settings = await emu.json(
        "PUT", f"{emu.url}/_emulator/settings", json={"provisioning_delay_seconds": 0}
    )
    assert (status, settings["provisioning_delay_seconds"], settings["instant"]) == (200, 0, False)
    status, _ = await emu.json(
        "PUT", f"{emu.url}/_emulator/faults", json={"rrs": {"error_rate": 2}}
    )
    assert status == 400
