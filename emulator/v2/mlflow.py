"""MLflow tracking of the v2 workspace (shared/PROTOCOL-V2 §2.6): ``runs/get`` and
``metrics/get-history``, the run id being the job name.

Served under ``/mlflow/v2.0{workspace id}/api/2.0/mlflow/`` (the workspace GET's
``mlFlowTrackingUri`` names this host with ``/mlflow/v1.0``; clients swap in ``v2.0``), with
the ARM bearer token. A job's training script logs each metric of its evaluation once, at
step 0, when it finishes; a job that logs nothing (``jobs_log_no_metrics``) or fails has a run
without metrics. Errors use MLflow's body: ``{"error_code", "message"}``
(``RESOURCE_DOES_NOT_EXIST`` 404, ``INVALID_PARAMETER_VALUE`` 400, ``UNAUTHENTICATED`` 401).
The fault switch ``v2_mlflow`` fails or slows these calls.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.errors import ApiError
from emulator.state import STATE, bearer_matches
from emulator.v2.state import V2_STATE, V2Job
from emulator.v2.workspace import PROVIDER

MLFLOW_PATH = (
    "/mlflow/v2.0/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    f"/providers/{PROVIDER}/workspaces/{{workspace}}/api/2.0/mlflow"
)
MAX_RESULTS = 25_000
# MLflow's run status for each job status that ended; every other one is RUNNING.
_RUN_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}


def mlflow_error(status: int, code: str, message: str) -> web.Response:
    """An MLflow REST error answer."""
    return web.json_response({"error_code": code, "message": message}, status=status)


def _milliseconds(job: V2Job, ended: bool) -> int | None:
    moment = job.ended if ended else job.created
    return int(moment.timestamp() * 1000) if moment is not None else None


async def _job(request: web.Request) -> V2Job | web.Response:
    """The run's job after the auth, fault and run-id checks, or the error answer."""
    state = request.app[STATE]
    v2 = request.app[V2_STATE]
    try:
        await v2.faults.mlflow.before()
    except ApiError as exc:
        return mlflow_error(exc.status, "TEMPORARILY_UNAVAILABLE", exc.message)
    if not bearer_matches(request.headers.get("Authorization"), state.config.arm.token):
        return mlflow_error(401, "UNAUTHENTICATED", "The access token is invalid.")
    match = request.match_info
    arm = state.config.arm
    if (match["subscription_id"].lower(), match["resource_group"].lower()) != (
        arm.subscription_id.lower(),
        arm.resource_groups[0].lower(),
    ):
        return mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", "The workspace was not found.")
    try:
        workspace = v2.workspace(match["workspace"])
    except ApiError:
        return mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", "The workspace was not found.")
    run_id = request.query.get("run_id") or request.query.get("run_uuid")
    if not run_id:
        return mlflow_error(400, "INVALID_PARAMETER_VALUE", "run_id is required.")
    job = v2.jobs.get((workspace.name, run_id))
    if job is None:
        return mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
    v2.count("mlflow_call")
    return job


def _metric(key: str, logged: tuple[float, int, int]) -> dict[str, Any]:
    value, timestamp, step = logged
    return {"key": key, "value": value, "timestamp": timestamp, "step": step}


async def get_run(request: web.Request) -> web.Response:
    """GET runs/get: the run's info and the latest value of each metric."""
    found = await _job(request)
    if isinstance(found, web.Response):
        return found
    job = found
    info: dict[str, Any] = {
        "run_id": job.name,
        "run_uuid": job.name,
        "run_name": job.name,
        "experiment_id": str(job.body["properties"].get("experimentName") or "Default"),
        "status": _RUN_STATUS.get(job.status, "RUNNING"),
        "start_time": _milliseconds(job, ended=False),
        "lifecycle_stage": "active",
    }
    if job.terminal and job.ended is not None:
        info["end_time"] = _milliseconds(job, ended=True)
    tags = job.body["properties"].get("tags") or {}
    data = {
        "metrics": [_metric(key, logged) for key, logged in job.metrics.items()],
        "params": [],
        "tags": [{"key": str(k), "value": str(v)} for k, v in tags.items()],
    }
    return web.json_response({"run": {"info": info, "data": data}})


async def get_history(request: web.Request) -> web.Response:
    """GET metrics/get-history: every logged value of one metric (one per metric here)."""
    found = await _job(request)
    if isinstance(found, web.Response):
        return found
    key = request.query.get("metric_key")
    if not key:
        return mlflow_error(400, "INVALID_PARAMETER_VALUE", "metric_key is required.")
    raw = request.query.get("max_results", str(MAX_RESULTS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RESULTS:
        return mlflow_error(
            400, "INVALID_PARAMETER_VALUE", f"max_results must be 1 to {MAX_RESULTS}."
        )
    logged = found.metrics.get(key)
    return web.json_response({"metrics": [_metric(key, logged)] if logged else []})


def add_routes(app: web.Application) -> None:
    """Register the MLflow routes."""
    app.router.add_get(f"{MLFLOW_PATH}/runs/get", get_run)
    app.router.add_get(f"{MLFLOW_PATH}/metrics/get-history", get_history)
