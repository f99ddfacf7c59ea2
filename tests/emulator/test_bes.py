"""BES 2.0 contract (PROTOCOL.md §2-3) over raw HTTP: lifecycle, results, validation, errors."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from emulator.config import BIKE_RENTAL
from emulator.datagen import bike_rental_csv
from emulator.training import REGRESSION_METRICS, Model, parse_csv, train

from .conftest import SCORING, Blobs, Emu, bearer, wait_for_job

V = "?api-version=2.0"


def submission(blobs: Blobs, name: str = "r1") -> dict[str, Any]:
    """A submit body (JSON, which tests change in place): tenant data as input1, model and
    evaluation outputs."""
    return {
        "Inputs": {"input1": blobs.ref("data/train.csv")},
        "Outputs": {
            "output1": blobs.ref(f"models/{name}.ilearner"),
            "output2": blobs.ref(f"models/{name}.eval.csv"),
        },
        "GlobalParameters": {},
    }


async def submit(emu: Emu, body: object) -> tuple[int, Any]:
    """POST jobs on the default training endpoint: (status, the job id or the error body)."""
    base, auth = emu.runtime()
    return await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)


async def test_job_lifecycle_writes_model_and_evaluation(emu: Emu, blobs: Blobs) -> None:
    """Submit → NotStarted → start → Finished; Results' SAS URLs read the model and eval."""
    data = bike_rental_csv("loc001", 400, seed=1)
    await blobs.upload("data/train.csv", data)
    base, auth = emu.runtime()
    status, job_id = await submit(emu, submission(blobs))
    assert status == 200
    assert isinstance(job_id, str)
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)

    status, body = await emu.json("GET", f"{base}/jobs/{job_id}{V}", headers=auth)
    assert (status, body["StatusCode"], body["Results"]) == (200, "NotStarted", None)

    async with emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth) as response:
        assert response.status == 200
    body = await wait_for_job(emu, base, auth, job_id)
    assert body["StatusCode"] == "Finished", body["Details"]
    assert body["Details"] is None
    results = body["Results"]
    assert set(results) == {"output1", "output2"}
    model_loc = results["output1"]
    assert model_loc["ConnectionString"] is None
    assert model_loc["RelativeLocation"] == f"{blobs.container}/models/r1.ilearner"
    assert "sp=r" in model_loc["SasBlobToken"]
    assert "sig=" in model_loc["SasBlobToken"]

    url = model_loc["BaseLocation"] + model_loc["RelativeLocation"] + model_loc["SasBlobToken"]
    async with emu.http.get(url) as response:
        assert response.status == 200
        model = Model.from_json(await response.read())
    expected = train(parse_csv(data), BIKE_RENTAL)
    assert model == expected

    eval_loc = results["output2"]
    url = eval_loc["BaseLocation"] + eval_loc["RelativeLocation"] + eval_loc["SasBlobToken"]
    async with emu.http.get(url) as response:
        table = list(csv.reader(io.StringIO(await response.text())))
    assert table[0] == list(REGRESSION_METRICS)
    assert len(table) == 2
    assert 0.5 < float(table[1][4]) <= 1.0  # coefficient of determination of a good fit

    # The SAS is read-only: writing with it is refused.
    async with emu.http.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}) as response:
        assert response.status == 403


async def test_each_status_get_mints_a_fresh_sas(emu: Emu, blobs: Blobs) -> None:
    """Two GETs a second apart carry different SAS tokens for the same blob."""
    await emu.put_settings(instant=True)
    base, auth = emu.runtime()
    _, job_id = await submit(emu, submission(blobs))
    await emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth)
    first = (await wait_for_job(emu, base, auth, job_id))["Results"]["output1"]["SasBlobToken"]
    # A SAS names its start and expiry to the second: the next second's GET must differ.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        second = (await wait_for_job(emu, base, auth, job_id))["Results"]["output1"]
        if second["SasBlobToken"] != first:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("every status GET for 3 s carried the same SAS token")


async def test_instant_mode_still_writes_valid_blobs(emu: Emu, blobs: Blobs) -> None:
    """Instant mode skips reading and training but writes a loadable model and evaluation."""
    await emu.put_settings(instant=True)
    base, auth = emu.runtime()
    body = submission(blobs)
    _, job_id = await submit(emu, body)
    await emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth)
    assert (await wait_for_job(emu, base, auth, job_id))["StatusCode"] == "Finished"
    model = Model.from_json(await blobs.download("models/r1.ilearner"))
    assert model.label == "cnt"
    evaluation = (await blobs.download("models/r1.eval.csv")).decode().splitlines()
    assert evaluation[0].split(",") == list(REGRESSION_METRICS)


async def test_data_uri_global_parameter_and_sas_input(emu: Emu, blobs: Blobs) -> None:
    """A job reads its CSV from a URL GlobalParameter, or from BaseLocation + SasBlobToken."""
    await blobs.upload("data/train.csv", bike_rental_csv("loc002", 200, seed=3))
    base, auth = emu.runtime()
    assert blobs.service.account_name is not None
    sas = generate_blob_sas(
        account_name=blobs.service.account_name,
        container_name=blobs.container,
        blob_name="data/train.csv",
        account_key=blobs.service.credential.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    account_url = blobs.service.url.rstrip("/") + "/"
    by_uri = {
        "Outputs": {"output1": blobs.ref("m/uri.ilearner")},
        "GlobalParameters": {"URI": f"{account_url}{blobs.container}/data/train.csv?{sas}"},
    }
    by_sas = {
        "Inputs": {
            "input1": {
                "BaseLocation": account_url,
                "RelativeLocation": f"/{blobs.container}/data/train.csv",
                "SasBlobToken": f"?{sas}",
            }
        },
        "Outputs": {"output1": blobs.ref("m/sas.ilearner")},
    }
    models = []
    for body in (by_uri, by_sas):
        status, job_id = await submit(emu, body)
        assert status == 200, job_id
        await emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth)
        result = await wait_for_job(emu, base, auth, job_id)
        assert result["StatusCode"] == "Finished", result["Details"]
        assert set(result["Results"]) == {"output1"}
    for name in ("uri", "sas"):
        models.append(Model.from_json(await blobs.download(f"m/{name}.ilearner")))
    assert models[0] == models[1]


async def test_wrong_key_is_401_with_error_body(emu: Emu, blobs: Blobs) -> None:
    """A wrong or missing key answers 401 Unauthorized / ScoreRequestUnauthorized."""
    base, _ = emu.runtime()
    other_key = emu.service(SCORING).endpoints[0].primary_key
    for headers in (bearer("wrong"), bearer(other_key), {}):
        status, body = await emu.json(
            "POST", f"{base}/jobs{V}", json=submission(blobs), headers=headers
        )
        assert status == 401
        assert body["error"]["code"] == "Unauthorized"
        assert body["error"]["details"][0]["code"] == "ScoreRequestUnauthorized"
        assert body["error"]["details"][0]["message"] == "Invalid credentials provided."


async def test_secondary_key_works(emu: Emu, blobs: Blobs) -> None:
    """The endpoint's secondary key authorizes runtime calls too."""
    base, _ = emu.runtime()
    key = emu.service("Bike Rental Training").endpoints[0].secondary_key
    status, _ = await emu.json(
        "POST", f"{base}/jobs{V}", json=submission(blobs), headers=bearer(key)
    )
    assert status == 200


async def test_start_twice_is_cannot_start_job(emu: Emu, blobs: Blobs) -> None:
    """Starting a job that is not NotStarted answers 400 InvalidOperation / CannotStartJob."""
    await emu.put_settings(min_job_seconds=5)
    base, auth = emu.runtime()
    _, job_id = await submit(emu, submission(blobs))
    status, _ = await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth)
    assert status == 200
    status, body = await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth)
    assert status == 400
    assert body["error"]["code"] == "InvalidOperation"
    assert body["error"]["details"][0]["code"] == "CannotStartJob"


async def test_delete_while_running_cancels(emu: Emu, blobs: Blobs) -> None:
    """DELETE of a Running job makes it Cancelled; no model is written; stats count it."""
    await blobs.upload("data/train.csv", bike_rental_csv("loc003", 100))
    await emu.put_settings(min_job_seconds=30)
    base, auth = emu.runtime()
    _, job_id = await submit(emu, submission(blobs))
    await emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth)
    _, body = await emu.json("GET", f"{base}/jobs/{job_id}{V}", headers=auth)
    assert body["StatusCode"] == "Running"
    status, _ = await emu.json("DELETE", f"{base}/jobs/{job_id}{V}", headers=auth)
    assert status == 200
    _, body = await emu.json("GET", f"{base}/jobs/{job_id}{V}", headers=auth)
    assert (body["StatusCode"], body["Results"]) == ("Cancelled", None)
    stats = (await emu.stats())["web_services"]["Bike Rental Training"]
    assert stats["jobs_cancelled"] == 1
    assert stats["running_now"] == 0
    assert not [
        b async for b in blobs.service.get_container_client(blobs.container).list_blobs("models/")
    ]


async def test_delete_not_started_cancels(emu: Emu, blobs: Blobs) -> None:
    """DELETE of a NotStarted job makes it Cancelled and it cannot be started any more."""
    base, auth = emu.runtime()
    _, job_id = await submit(emu, submission(blobs))
    assert (await emu.json("DELETE", f"{base}/jobs/{job_id}{V}", headers=auth))[0] == 200
    _, body = await emu.json("GET", f"{base}/jobs/{job_id}{V}", headers=auth)
    assert body["StatusCode"] == "Cancelled"
    status, body = await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth)
    assert (status, body["error"]["details"][0]["code"]) == (400, "CannotStartJob")


async def test_unknown_job_and_endpoint_are_404(emu: Emu) -> None:
    """An unknown job id or endpoint id answers 404 NotFound with the error body."""
    base, auth = emu.runtime()
    status, body = await emu.json("GET", f"{base}/jobs/{'0' * 32}{V}", headers=auth)
    assert (status, body["error"]["code"]) == (404, "NotFound")
    unknown = f"{emu.url}/workspaces/{emu.ws_id}/services/{'f' * 32}/jobs{V}"
    status, body = await emu.json("POST", unknown, json={}, headers=auth)
    assert (status, body["error"]["code"]) == (404, "NotFound")


async def test_job_failures_carry_details(emu: Emu, blobs: Blobs) -> None:
    """Missing blob, missing columns and non-CSV data end Failed with Details text."""
    base, auth = emu.runtime()
    await blobs.upload("data/nolabel.csv", "season,hr\n1,2\n" * 20)
    await blobs.upload("data/junk.csv", b"\x00\x01 not a table")
    cases = {
        "data/missing.csv": "BlobNotFound",
        "data/nolabel.csv": "not found",
        "data/junk.csv": "ModuleExecutionError",
    }
    for path, expected in cases.items():
        body = submission(blobs)
        body["Inputs"] = {"input1": blobs.ref(path)}
        _, job_id = await submit(emu, body)
        await emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth)
        result = await wait_for_job(emu, base, auth, job_id)
        assert result["StatusCode"] == "Failed"
        assert result["Results"] is None
        assert expected in result["Details"]
    stats = (await emu.stats())["web_services"]["Bike Rental Training"]
    assert stats["jobs_failed"] == 3


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda b, blobs: b["Outputs"].__setitem__("output1", blobs.ref("m/model.csv")),
            "InvalidBlobExtension",
        ),
        (
            lambda b, blobs: b["Outputs"].__setitem__("output2", blobs.ref("m/eval.json")),
            "InvalidBlobExtension",
        ),
        (
            lambda b, blobs: b.__setitem__("Input", blobs.ref("data/train.csv")),
            "DuplicateInputInBatchCall",
        ),
        (lambda b, blobs: b.__setitem__("Inputs", {}), "BatchJobInputsNotSpecified"),
        (
            lambda b, blobs: b["Inputs"].__setitem__("input2", blobs.ref("d/x.csv")),
            "InvalidInputNames",
        ),
        (
            lambda b, blobs: b["Outputs"].__setitem__("output3", blobs.ref("m/x.csv")),
            "InvalidOutputOverrideName",
        ),
        (
            lambda b, blobs: b["Outputs"].__setitem__("Output1", blobs.ref("m/x.ilearner")),
            "InvalidOutputOverrideName",
        ),
        (lambda b, blobs: b["GlobalParameters"].__setitem__("Alpha", "1"), "UnexpectedParameter"),
        (
            lambda b, blobs: b["Inputs"]["input1"].__setitem__("ConnectionString", "nonsense"),
            "InvalidBlobConnectionString",
        ),
        (
            lambda b, blobs: b["Inputs"]["input1"].pop("ConnectionString"),
            "MissingInputBlobInformation",
        ),
        (
            lambda b, blobs: b["Inputs"]["input1"].__setitem__("RelativeLocation", "nocontainer"),
            "InputBlobRelativeLocationInvalid",
        ),
        (lambda b, blobs: b["Inputs"]["input1"].__setitem__("Extra", "x"), "RequestBodyInvalid"),
        (
            lambda b, blobs: b.__setitem__("Outputs", {"output2": blobs.ref("m/e.csv")}),
            "BatchJobOutputsNotSpecified",
        ),
        (
            lambda b, blobs: b["GlobalParameters"].__setitem__("URI", "http://x/y.csv"),
            "DuplicateInputInBatchCall",
        ),
    ],
)
async def test_submit_validation(
    emu: Emu, blobs: Blobs, mutate: Callable[[dict[str, Any], Blobs], object], code: str
) -> None:
    """Each invalid submission answers 400 with the documented detail code and creates no job."""
    body = submission(blobs)
    mutate(body, blobs)
    status, answer = await submit(emu, body)
    assert status == 400, answer
    assert answer["error"]["details"][0]["code"] == code
    assert (await emu.stats())["web_services"]["Bike Rental Training"]["jobs_created"] == 0


async def test_legacy_input_form_is_accepted(emu: Emu, blobs: Blobs) -> None:
    """The singular ``Input`` member is the same as ``Inputs.input1``."""
    body = submission(blobs)
    body["Input"] = body.pop("Inputs")["input1"]
    status, job_id = await submit(emu, body)
    assert status == 200, job_id


async def test_bad_json_is_request_body_invalid(emu: Emu) -> None:
    """A body that is not JSON answers 400 BadArgument / RequestBodyInvalid."""
    base, auth = emu.runtime()
    async with emu.http.post(f"{base}/jobs{V}", data=b"{nope", headers=auth) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["code"] == "BadArgument"
    assert body["error"]["details"][0]["code"] == "RequestBodyInvalid"


async def test_api_version_is_required(emu: Emu, blobs: Blobs) -> None:
    """Runtime calls without ``api-version=2.0`` are refused."""
    base, auth = emu.runtime()
    status, body = await emu.json("POST", f"{base}/jobs", json=submission(blobs), headers=auth)
    assert status == 400
    assert body["error"]["details"][0]["code"] == "InvalidApiVersion"


async def test_concurrency_limit_queues_jobs_as_running(emu: Emu, blobs: Blobs) -> None:
    """With max_concurrent_jobs N, more started jobs report Running but only N work at once."""
    config = emu.config
    limit = config.workspaces[0].web_services[0].endpoints[0].max_concurrent_jobs
    assert limit == 40
    await emu.put_settings(instant=True, min_job_seconds=2.0)  # all starts land before an end
    base, auth = emu.runtime()
    ids = []
    for i in range(45):
        _, job_id = await submit(emu, submission(blobs, f"c{i}"))
        ids.append(job_id)
    await asyncio.gather(*(emu.http.post(f"{base}/jobs/{j}/start{V}", headers=auth) for j in ids))
    async with asyncio.timeout(5):  # each started job's task counts itself running or waiting
        stats = await training_stats(emu)
        while stats["running_now"] + stats["waiting_now"] < 45:
            stats = await training_stats(emu)
    assert (stats["running_now"], stats["waiting_now"]) == (40, 5)
    statuses = [
        (await emu.json("GET", f"{base}/jobs/{j}{V}", headers=auth))[1]["StatusCode"] for j in ids
    ]
    assert set(statuses) == {"Running"}
    for job_id in ids:
        assert (await wait_for_job(emu, base, auth, job_id))["StatusCode"] == "Finished"
    stats = await training_stats(emu)
    assert stats["max_concurrent_running"] == 40
    assert stats["jobs_finished"] == 45
    assert all(v == 1 for v in stats["started_jobs_by_output"].values())


async def test_unknown_paths_answer_the_error_body(emu: Emu) -> None:
    """Unknown paths answer the JSON error body too (no HTML, no traceback)."""
    status, body = await emu.json("GET", f"{emu.url}/nothing/here")
    assert (status, body["error"]["code"]) == (404, "NotFound")


async def training_stats(emu: Emu) -> dict[str, Any]:
    """Job counters of the training web service."""
    stats: dict[str, Any] = (await emu.stats())["web_services"]["Bike Rental Training"]
    return stats
