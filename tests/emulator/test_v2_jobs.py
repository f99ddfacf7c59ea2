"""The emulator's Azure ML v2 jobs: ARM checks, datastores on Azurite, PUT rules, training."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import Any

import aiohttp

from emulator.datagen import bike_rental_csv
from emulator.training import Model
from tests.azureml_v2 import API, datastore_body, workspace_url
from tests.emulator.conftest import Blobs, Emu, bearer


def ws(emu: Emu) -> str:
    """The v2 workspace URL of this emulator."""
    arm = emu.config.arm
    return workspace_url(emu.url, arm.subscription_id, arm.resource_groups[0])


def job_body(train: str = "data/t1/v1.csv", kind: str = "bike_rental") -> dict[str, Any]:
    """A command job of retrainq's shape on the datastore ``store``."""

    def uri(path: str) -> str:
        return f"azureml://datastores/store/paths/{path}"

    return {
        "properties": {
            "jobType": "Command",
            "command": "python train.py",
            "environmentId": "rq-sklearn/versions/1",
            "inputs": {
                "train": {"jobInputType": "uri_file", "uri": uri(train)},
                "kind": {"jobInputType": "literal", "value": kind},
            },
            "outputs": {
                "model": {"jobOutputType": "uri_file", "uri": uri("models/t1/r1.ilearner")},
                "evaluation": {"jobOutputType": "uri_file", "uri": uri("models/t1/r1.eval.csv")},
            },
            "tags": {"retrainq-tenant": "t1"},
        }
    }


async def with_datastore(emu: Emu, blobs: Blobs) -> None:
    """Register the test's container as datastore ``store`` and upload tenant t1's data."""
    await blobs.upload("data/t1/v1.csv", bike_rental_csv("t1", 300, seed=3))
    body = datastore_body(blobs.connection_string, blobs.container)
    status, reply = await emu.json(
        "PUT", f"{ws(emu)}/datastores/store?{API}", json=body, headers=emu.arm_auth
    )
    assert status == 201, reply
    assert "secrets" not in json.dumps(reply)


async def put(emu: Emu, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    """PUT a job."""
    return await emu.json("PUT", f"{ws(emu)}/jobs/{name}?{API}", json=body, headers=emu.arm_auth)


async def until_ended(emu: Emu, name: str) -> dict[str, Any]:
    """Poll the job until Completed, Failed or Canceled."""
    for _ in range(500):
        status, body = await emu.json("GET", f"{ws(emu)}/jobs/{name}?{API}", headers=emu.arm_auth)
        assert status == 200, body
        if body["properties"]["status"] in ("Completed", "Failed", "Canceled"):
            assert isinstance(body, dict)
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {name} did not end")


async def v2_stats(emu: Emu) -> dict[str, Any]:
    """The v2 counters."""
    _, body = await emu.json("GET", f"{emu.url}/_emulator/v2/stats")
    assert isinstance(body, dict)
    return body


async def test_a_job_put_trains_on_the_datastore_blob_and_writes_both_outputs(
    emu: Emu, blobs: Blobs
) -> None:
    """201 NotStarted, then Completed; the model is the classic trainer's JSON and the
    evaluation its Evaluate Model table."""
    await with_datastore(emu, blobs)
    status, reply = await put(emu, "rq-t1-1", job_body())
    assert (status, reply["properties"]["status"]) == (201, "NotStarted"), reply
    ended = await until_ended(emu, "rq-t1-1")
    assert ended["properties"]["status"] == "Completed", ended
    model = Model.from_json(await blobs.download("models/t1/r1.ilearner"))
    assert model.label == "cnt"
    table = (await blobs.download("models/t1/r1.eval.csv")).decode()
    assert "Coefficient of Determination" in table.splitlines()[0]


async def test_same_body_again_is_200_a_changed_one_is_refused_and_one_job_exists(
    emu: Emu, blobs: Blobs
) -> None:
    """An identical re-PUT answers 200 and starts nothing; new tags are taken; a changed
    input answers 400 UserError 'already exists'; the name keeps one job."""
    await with_datastore(emu, blobs)
    body = job_body()
    assert (await put(emu, "rq-t1-2", body))[0] == 201
    assert (await put(emu, "rq-t1-2", body))[0] == 200
    retagged = copy.deepcopy(body)
    retagged["properties"]["tags"] = {"retrainq-tenant": "t1", "extra": "yes"}
    status, reply = await put(emu, "rq-t1-2", retagged)
    assert (status, reply["properties"]["tags"]["extra"]) == (200, "yes")
    changed = job_body(train="data/t1/v2.csv")
    status, reply = await put(emu, "rq-t1-2", changed)
    assert status == 400, reply
    assert reply["error"]["code"] == "UserError"
    assert "already exists" in reply["error"]["message"]
    assert reply["error"]["details"][0]["code"] == "Immutable"
    counters = (await v2_stats(emu))["jobs"]["rq-t1-2"]
    assert (counters["jobs_created"], counters["puts_unchanged"], counters["puts_refused"]) == (
        1,
        2,
        1,
    )
    assert (await v2_stats(emu))["jobs_total"] == 1


async def test_arm_checks_token_api_version_workspace_and_datastores(
    emu: Emu, blobs: Blobs
) -> None:
    """401 for a wrong token, 400 without api-version, 404 for an unknown workspace, 400 for
    a datastore that is not registered; the workspace GET names the MLflow URI."""
    url = f"{ws(emu)}/jobs/rq-x-1"
    status, reply = await emu.json("PUT", f"{url}?{API}", json=job_body(), headers=bearer("no"))
    assert (status, reply["error"]["code"]) == (401, "InvalidAuthenticationToken")
    status, reply = await emu.json("GET", url, headers=emu.arm_auth)
    assert (status, reply["error"]["code"]) == (400, "InvalidApiVersion")
    other = url.replace("retrainq-v2", "elsewhere")
    assert (await emu.json("GET", f"{other}?{API}", headers=emu.arm_auth))[0] == 404
    status, reply = await put(emu, "rq-x-1", job_body())
    assert status == 400, reply
    assert "Datastore 'store'" in reply["error"]["message"]
    status, reply = await emu.json("GET", f"{ws(emu)}?{API}", headers=emu.arm_auth)
    assert status == 200, reply
    assert "/mlflow/v1.0/" in reply["properties"]["mlFlowTrackingUri"]


async def test_cancel_answers_202_with_a_location_that_turns_200(emu: Emu, blobs: Blobs) -> None:
    """A running job is cancelled: 202 + Location + Retry-After, the job ends Canceled and the
    Location answers 200; cancelling it again changes nothing."""
    await with_datastore(emu, blobs)
    await emu.put_settings(min_job_seconds=30)
    assert (await put(emu, "rq-t1-3", job_body()))[0] == 201
    async with emu.http.post(f"{ws(emu)}/jobs/rq-t1-3/cancel?{API}", headers=emu.arm_auth) as reply:
        assert reply.status == 202
        location, retry = reply.headers["Location"], reply.headers["Retry-After"]
    assert retry == "1"
    ended = await until_ended(emu, "rq-t1-3")
    assert ended["properties"]["status"] == "Canceled"
    async with emu.http.get(location, headers=emu.arm_auth) as reply:
        assert reply.status == 200
    async with emu.http.post(f"{ws(emu)}/jobs/rq-t1-3/cancel?{API}", headers=emu.arm_auth) as reply:
        assert reply.status == 202
    assert (await until_ended(emu, "rq-t1-3"))["properties"]["status"] == "Canceled"


async def test_a_missing_input_blob_fails_the_job_with_a_reason(emu: Emu, blobs: Blobs) -> None:
    """The job fails (not the PUT) and says why in azureml.failureReason."""
    await with_datastore(emu, blobs)
    assert (await put(emu, "rq-t1-4", job_body(train="data/t1/none.csv")))[0] == 201
    ended = await until_ended(emu, "rq-t1-4")
    assert ended["properties"]["status"] == "Failed"
    reason = json.loads(ended["properties"]["properties"]["azureml.failureReason"])
    assert "BlobNotFound" in reason["message"], reason


async def test_v2_faults_fail_next_and_commit_then_drop(emu: Emu, blobs: Blobs) -> None:
    """fail_next answers 503 without effect; commit_then_drop creates the job and drops the
    reply, so the retried PUT meets it (200) and one job exists."""
    await with_datastore(emu, blobs)
    faults = {"v2_jobs": {"fail_next": 1, "commit_then_drop": 1}}
    status, _ = await emu.json("PUT", f"{emu.url}/_emulator/v2/faults", json=faults)
    assert status == 200
    assert (await put(emu, "rq-t1-5", job_body()))[0] == 503
    assert "rq-t1-5" not in (await v2_stats(emu))["jobs"]
    # aiohttp itself repeats a PUT whose reused connection was reset, so the dropped reply
    # may surface as an error or as the repeat's 200.
    with contextlib.suppress(aiohttp.ClientConnectionError):
        await put(emu, "rq-t1-5", job_body())
    assert (await put(emu, "rq-t1-5", job_body()))[0] == 200
    stats = await v2_stats(emu)
    assert stats["faults"]["dropped"] == 1
    assert stats["jobs"]["rq-t1-5"]["jobs_created"] == 1
    assert stats["jobs"]["rq-t1-5"]["puts_unchanged"] >= 1
