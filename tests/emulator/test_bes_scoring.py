"""BES batch scoring on predictive endpoints (PROTOCOL.md §8) over raw HTTP and Azurite."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from emulator.config import BIKE_RENTAL, EndpointConfig, default_config, derived_key
from emulator.datagen import bike_rental_csv, churn_csv
from emulator.training import Model, parse_csv, train

from .conftest import SCORING, Blobs, Emu, bearer, start_emulator, wait_for_job

V = "?api-version=2.0"
CHURN_SCORING = "Churn Scoring"


def scoring_body(blobs: Blobs, out: str = "scored.csv") -> dict[str, Any]:
    """A scoring submission: rows as input1, the scored dataset as output1."""
    return {
        "Inputs": {"input1": blobs.ref("data/holdout.csv")},
        "Outputs": {"output1": blobs.ref(f"scored/{out}")},
        "GlobalParameters": {},
    }


async def run_job(emu: Emu, base: str, auth: dict[str, str], body: dict[str, Any]) -> Any:
    """Submit and start a job; its final status body."""
    status, job_id = await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)
    assert status == 200, job_id
    status, _ = await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth)
    assert status == 200
    return await wait_for_job(emu, base, auth, job_id)


async def rrs_table(emu: Emu, base: str, auth: dict[str, str], text: str) -> list[list[str]]:
    """The RRS answer (column names first, then values) for the rows of a CSV."""
    rows = list(csv.reader(io.StringIO(text)))
    body = {"Inputs": {"input1": {"ColumnNames": rows[0], "Values": rows[1:]}}}
    status, answer = await emu.json("POST", f"{base}/execute{V}", json=body, headers=auth)
    assert status == 200, answer
    value = answer["Results"]["output1"]["value"]
    return [value["ColumnNames"], *value["Values"]]


async def download(emu: Emu, location: dict[str, str]) -> str:
    """A result blob through its Results entry (BaseLocation + RelativeLocation + SAS)."""
    url = location["BaseLocation"] + location["RelativeLocation"] + location["SasBlobToken"]
    async with emu.http.get(url) as response:
        assert response.status == 200
        return await response.text()


async def test_a_predictive_endpoint_scores_a_batch_like_rrs(emu: Emu, blobs: Blobs) -> None:
    """Finished scoring job: output1 = the input columns (label passed through) followed by
    Scored Labels, the same cells RRS answers for the same rows; stats count the job."""
    data = bike_rental_csv("holdout", 120, seed=4)
    await blobs.upload("data/holdout.csv", data)
    base, auth = emu.runtime(SCORING)
    result = await run_job(emu, base, auth, scoring_body(blobs))
    assert result["StatusCode"] == "Finished", result["Details"]
    assert set(result["Results"]) == {"output1"}
    location = result["Results"]["output1"]
    assert location["RelativeLocation"] == f"{blobs.container}/scored/scored.csv"
    scored = list(csv.reader(io.StringIO(await download(emu, location))))
    columns = next(csv.reader(io.StringIO(data)))
    assert scored[0] == [*columns, "Scored Labels"]
    assert "cnt" in scored[0]
    assert [row[: len(columns)] for row in scored[1:]] == list(csv.reader(io.StringIO(data)))[1:]
    assert scored == await rrs_table(emu, base, auth, data)
    stats = (await emu.stats())["web_services"][SCORING]
    assert (stats["jobs_created"], stats["jobs_started"], stats["jobs_finished"]) == (1, 1, 1)


async def test_binary_classification_adds_scored_probabilities(emu: Emu, blobs: Blobs) -> None:
    """A churn scoring job appends Scored Labels and Scored Probabilities, as RRS does."""
    data = churn_csv("holdout", 80, seed=2)
    await blobs.upload("data/holdout.csv", data)
    base, auth = emu.runtime(CHURN_SCORING)
    result = await run_job(emu, base, auth, scoring_body(blobs))
    assert result["StatusCode"] == "Finished", result["Details"]
    scored = list(csv.reader(io.StringIO(await blobs.download_text("scored/scored.csv"))))
    assert scored[0][-2:] == ["Scored Labels", "Scored Probabilities"]
    assert scored == await rrs_table(emu, base, auth, data)


async def test_tsv_and_arff_outputs(emu: Emu, blobs: Blobs) -> None:
    """``.tsv`` is the same table tab-separated; ``.arff`` declares each column and its data."""
    data = bike_rental_csv("holdout", 30, seed=5)
    await blobs.upload("data/holdout.csv", data)
    base, auth = emu.runtime(SCORING)
    for name in ("scored.csv", "scored.tsv", "scored.arff"):
        result = await run_job(emu, base, auth, scoring_body(blobs, out=name))
        assert result["StatusCode"] == "Finished", result["Details"]
    as_csv = list(csv.reader(io.StringIO(await blobs.download_text("scored/scored.csv"))))
    tsv = await blobs.download_text("scored/scored.tsv")
    assert list(csv.reader(io.StringIO(tsv), delimiter="\t")) == as_csv
    arff = (await blobs.download_text("scored/scored.arff")).splitlines()
    assert arff[0] == "@RELATION scored"
    assert "@ATTRIBUTE 'Scored Labels' NUMERIC" in arff
    assert "@ATTRIBUTE 'dteday' STRING" in arff
    data_rows = arff[arff.index("@DATA") + 1 :]
    assert len(data_rows) == 30
    assert [row.rsplit(",", 1)[1] for row in data_rows] == [row[-1] for row in as_csv[1:]]


async def test_missing_input_columns_fail_the_job(emu: Emu, blobs: Blobs) -> None:
    """Rows without the service's input columns end Failed, naming the missing columns."""
    await blobs.upload("data/holdout.csv", "season,hr\n1,2\n3,4\n")
    base, auth = emu.runtime(SCORING)
    result = await run_job(emu, base, auth, scoring_body(blobs))
    assert (result["StatusCode"], result["Results"]) == ("Failed", None)
    assert result["Details"].startswith("ModuleExecutionError: Columns not found in the input:")
    assert "temp" in result["Details"]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda b, blobs: b["Outputs"].__setitem__("output1", blobs.ref("m/model.ilearner")),
            "InvalidBlobExtension",
        ),
        (
            lambda b, blobs: b["Outputs"].__setitem__("output2", blobs.ref("m/eval.csv")),
            "InvalidOutputOverrideName",
        ),
        (lambda b, blobs: b.__setitem__("Outputs", {}), "BatchJobOutputsNotSpecified"),
        (
            lambda b, blobs: b.__setitem__("Input", blobs.ref("data/holdout.csv")),
            "DuplicateInputInBatchCall",
        ),
        (
            lambda b, blobs: b["GlobalParameters"].__setitem__("URI", "http://x/y.csv"),
            "DuplicateInputInBatchCall",
        ),
        (lambda b, blobs: b.__setitem__("Inputs", {}), "BatchJobInputsNotSpecified"),
    ],
)
async def test_scoring_submit_validation(
    emu: Emu, blobs: Blobs, mutate: Callable[[dict[str, Any], Blobs], object], code: str
) -> None:
    """Invalid scoring submissions answer 400 BadArgument with the detail code, no job."""
    body = scoring_body(blobs)
    mutate(body, blobs)
    base, auth = emu.runtime(SCORING)
    status, answer = await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)
    assert status == 400, answer
    assert answer["error"]["code"] == "BadArgument"
    assert answer["error"]["details"][0]["code"] == code
    assert (await emu.stats())["web_services"][SCORING]["jobs_created"] == 0


async def test_faults_and_job_failures_apply_to_scoring(emu: Emu, blobs: Blobs) -> None:
    """bes_submit fail_next and the job failure rate act on scoring jobs like training jobs."""
    await blobs.upload("data/holdout.csv", bike_rental_csv("holdout", 10, seed=1))
    faults = {"bes_submit": {"fail_next": 1}, "bes_job_failure_rate": 1.0}
    assert (await emu.json("PUT", f"{emu.url}/_emulator/faults", json=faults))[0] == 200
    base, auth = emu.runtime(SCORING)
    status, answer = await emu.json(
        "POST", f"{base}/jobs{V}", json=scoring_body(blobs), headers=auth
    )
    assert (status, answer["error"]["details"][0]["code"]) == (503, "RequestThrottled")
    result = await run_job(emu, base, auth, scoring_body(blobs))
    assert result["StatusCode"] == "Failed"
    assert result["Details"] == "ModuleExecutionError: the job failed (injected fault)."
    assert (await emu.stats())["web_services"][SCORING]["jobs_failed"] == 1


async def test_forty_scoring_jobs_run_at_once_per_endpoint(emu: Emu, blobs: Blobs) -> None:
    """45 started scoring jobs: 40 run, 5 wait (reported Running); all finish."""
    await blobs.upload("data/holdout.csv", bike_rental_csv("holdout", 5, seed=1))
    await emu.put_settings(min_job_seconds=2.0)  # every start lands before a job ends
    base, auth = emu.runtime(SCORING)
    ids = []
    for i in range(45):
        body = scoring_body(blobs, out=f"s{i}.csv")
        _, job_id = await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)
        ids.append(job_id)
    await asyncio.gather(*(emu.http.post(f"{base}/jobs/{j}/start{V}", headers=auth) for j in ids))
    async with asyncio.timeout(10):
        stats = (await emu.stats())["web_services"][SCORING]
        while stats["running_now"] + stats["waiting_now"] < 45:
            stats = (await emu.stats())["web_services"][SCORING]
    assert (stats["running_now"], stats["waiting_now"]) == (40, 5)
    for job_id in ids:
        assert (await wait_for_job(emu, base, auth, job_id))["StatusCode"] == "Finished"
    stats = (await emu.stats())["web_services"][SCORING]
    assert (stats["max_concurrent_running"], stats["jobs_finished"]) == (40, 45)


@pytest.fixture
async def staged() -> AsyncIterator[Emu]:
    """The emulator with a configured ``staging`` endpoint of Bike Rental Scoring that runs
    one BES job at a time."""
    config = default_config()
    service = next(s for s in config.workspaces[0].web_services if s.name == SCORING)
    service.endpoints.append(
        EndpointConfig(
            name="staging",
            id="5" * 32,
            primary_key=derived_key("staging/primary"),
            secondary_key=derived_key("staging/secondary"),
            max_concurrent_jobs=1,
        )
    )
    server, url = await start_emulator(config)
    async with aiohttp.ClientSession() as http:
        yield Emu(url=url, http=http, config=config)
    await server.close()


async def test_a_job_scores_with_the_model_served_when_it_started(
    staged: Emu, blobs: Blobs
) -> None:
    """A job waiting for its endpoint's slot while the endpoint is PATCHed still scores with
    the model of its start; the next job scores with the new one."""
    emu = staged
    holdout = bike_rental_csv("holdout", 40, seed=8)
    await blobs.upload("data/holdout.csv", holdout)
    first = train(parse_csv(bike_rental_csv("tenant-a", 300, seed=1)), BIKE_RENTAL)
    second = train(parse_csv(bike_rental_csv("tenant-b", 300, seed=2, drift=True)), BIKE_RENTAL)
    await patch_staging(emu, blobs, first, "a")
    base, auth = emu.runtime(SCORING, index=1)
    await emu.put_settings(min_job_seconds=1.0)
    job_ids = []
    for name in ("blocker.csv", "waiting.csv"):
        body = scoring_body(blobs, out=name)
        _, job_id = await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)
        assert (await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth))[0] == 200
        job_ids.append(job_id)
    stats = (await emu.stats())["web_services"][SCORING]
    assert (stats["running_now"], stats["waiting_now"]) == (1, 1)
    await patch_staging(emu, blobs, second, "b")
    for job_id in job_ids:
        assert (await wait_for_job(emu, base, auth, job_id))["StatusCode"] == "Finished"
    await emu.put_settings(min_job_seconds=0)
    after = await run_job(emu, base, auth, scoring_body(blobs, out="after.csv"))
    assert after["StatusCode"] == "Finished"
    rows = parse_csv(holdout)

    async def labels(name: str) -> list[float]:
        scored = parse_csv(await blobs.download_text(f"scored/{name}"))
        return [float(r["Scored Labels"]) for r in scored]

    assert await labels("waiting.csv") == first.predict(rows)
    assert await labels("blocker.csv") == first.predict(rows)
    assert await labels("after.csv") == second.predict(rows)
    assert first.predict(rows) != second.predict(rows)


async def patch_staging(emu: Emu, blobs: Blobs, model: Model, name: str) -> None:
    """Upload ``model`` and PATCH the staging endpoint with a read SAS of it."""
    path = f"models/{name}.ilearner"
    await blobs.upload(path, model.to_json())
    assert blobs.service.account_name is not None
    sas = generate_blob_sas(
        account_name=blobs.service.account_name,
        container_name=blobs.container,
        blob_name=path,
        account_key=blobs.service.credential.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    location = {
        "BaseLocation": blobs.service.url.rstrip("/") + "/",
        "RelativeLocation": f"{blobs.container}/{path}",
        "SasBlobToken": f"?{sas}",
    }
    body = {"Resources": [{"Name": BIKE_RENTAL.resource_name, "Location": location}]}
    status, answer = await emu.json(
        "PATCH", f"{emu.management()}/endpoints/staging", json=body, headers=emu.ws_token
    )
    assert status == 200, answer


async def test_a_new_web_service_scores_batches_too(emu: Emu, blobs: Blobs) -> None:
    """The runtime of an ARM web service (its swaggerLocation base, listKeys key) scores."""
    data = bike_rental_csv("holdout", 20, seed=3)
    await blobs.upload("data/holdout.csv", data)
    _, service = await emu.json(
        "GET", f"{emu.arm_base}/bike-rental-template?api-version=2017-01-01", headers=emu.arm_auth
    )
    _, keys = await emu.json(
        "GET",
        f"{emu.arm_base}/bike-rental-template/listKeys?api-version=2017-01-01",
        headers=emu.arm_auth,
    )
    base = service["properties"]["swaggerLocation"].removesuffix("/swagger.json")
    auth = bearer(keys["primary"])
    result = await run_job(emu, base, auth, scoring_body(blobs))
    assert result["StatusCode"] == "Finished", result["Details"]
    scored = list(csv.reader(io.StringIO(await blobs.download_text("scored/scored.csv"))))
    assert scored == await rrs_table(emu, base, auth, data)
