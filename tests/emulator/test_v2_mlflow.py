"""The emulator's MLflow tracking of v2 jobs: runs/get and metrics/get-history."""

from __future__ import annotations

from typing import Any

from tests.azureml_v2 import API
from tests.emulator.conftest import Blobs, Emu, bearer
from tests.emulator.test_v2_jobs import job_body, put, until_ended, with_datastore, ws


async def mlflow_base(emu: Emu) -> str:
    """The REST base the workspace's mlFlowTrackingUri names (v1.0 swapped for v2.0)."""
    _, body = await emu.json("GET", f"{ws(emu)}?{API}", headers=emu.arm_auth)
    uri: str = body["properties"]["mlFlowTrackingUri"]
    assert uri.startswith("azureml://")
    return "http://" + uri.removeprefix("azureml://").replace("/mlflow/v1.0/", "/mlflow/v2.0/")


async def mlflow(emu: Emu, route: str, **query: str) -> tuple[int, Any]:
    """GET an MLflow route with the ARM token."""
    url = f"{await mlflow_base(emu)}/api/2.0/mlflow/{route}"
    return await emu.json("GET", url, params=query, headers=emu.arm_auth)


async def test_a_finished_job_has_an_mlflow_run_with_its_evaluation_metrics(
    emu: Emu, blobs: Blobs
) -> None:
    """Run id = job name; status FINISHED; one metric per evaluation column, at step 0, the
    same values as the evaluation output; get-history gives the one value."""
    await with_datastore(emu, blobs)
    assert (await put(emu, "rq-t1-m1", job_body()))[0] == 201
    await until_ended(emu, "rq-t1-m1")
    status, body = await mlflow(emu, "runs/get", run_id="rq-t1-m1", run_uuid="rq-t1-m1")
    assert status == 200, body
    info, data = body["run"]["info"], body["run"]["data"]
    assert (info["run_id"], info["status"]) == ("rq-t1-m1", "FINISHED")
    assert info["end_time"] >= info["start_time"]
    metrics = {m["key"]: m["value"] for m in data["metrics"]}
    table = (await blobs.download("models/t1/r1.eval.csv")).decode().splitlines()
    names, values = table[0].split(","), [float(v) for v in table[1].split(",")]
    assert metrics == dict(zip(names, values, strict=True))
    assert {m["step"] for m in data["metrics"]} == {0}
    key = "Coefficient of Determination"
    status, history = await mlflow(
        emu, "metrics/get-history", run_id="rq-t1-m1", metric_key=key, max_results="25000"
    )
    assert status == 200, history
    assert [m["value"] for m in history["metrics"]] == [metrics[key]]


async def test_mlflow_errors_use_its_body_and_a_job_may_log_nothing(emu: Emu, blobs: Blobs) -> None:
    """Unknown run 404 RESOURCE_DOES_NOT_EXIST, no run id 400, wrong token 401; a running job's
    run is RUNNING with no metrics; with jobs_log_no_metrics a finished job logs none."""
    await with_datastore(emu, blobs)
    status, body = await mlflow(emu, "runs/get", run_id="nope")
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = await mlflow(emu, "runs/get")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    url = f"{await mlflow_base(emu)}/api/2.0/mlflow/runs/get?run_id=x"
    status, body = await emu.json("GET", url, headers=bearer("wrong"))
    assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")
    await emu.put_settings(min_job_seconds=30)
    assert (await put(emu, "rq-t1-m2", job_body()))[0] == 201
    status, body = await mlflow(emu, "runs/get", run_id="rq-t1-m2")
    assert (body["run"]["info"]["status"], body["run"]["data"]["metrics"]) == ("RUNNING", [])
    await emu.put_settings(min_job_seconds=0)
    await emu.json("PUT", f"{emu.url}/_emulator/v2/faults", json={"jobs_log_no_metrics": True})
    assert (await put(emu, "rq-t1-m3", job_body()))[0] == 201
    await until_ended(emu, "rq-t1-m3")
    status, body = await mlflow(emu, "runs/get", run_id="rq-t1-m3")
    assert (body["run"]["info"]["status"], body["run"]["data"]["metrics"]) == ("FINISHED", [])
