"""Batch Execution Service 2.0 (PROTOCOL.md §2-3, §8): submit, start, status, delete.

The same four calls serve training runtimes (the job trains) and predictive runtimes (the job
scores a batch with the model the endpoint served when the job started); the submit body is
validated in ``submission``, the started job runs in ``batch``.
"""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web

from emulator.batch import run_job
from emulator.config import Surface
from emulator.errors import ApiError, bad_argument, not_found, read_object, unauthorized
from emulator.faults import drop_connection
from emulator.state import BLOBS, STATE, Job, Runtime, iso
from emulator.submission import MAIN_OUTPUT, parse_submission

log = structlog.get_logger("emulator.bes")


def runtime_of(request: web.Request) -> Runtime:
    """The runtime addressed by the path, after api-version and key checks."""
    state = request.app[STATE]
    match = request.match_info
    if "workspace_id" in match:
        runtime = state.find_runtime(match["workspace_id"], match["endpoint_id"])
    else:
        runtime = state.find_arm_runtime(match["subscription_id"], match["service_id"])
    if runtime is None:
        raise not_found("The web service endpoint was not found.", "WebServiceNotFound")
    if not runtime.authorized(request.headers.get("Authorization")):
        raise unauthorized()
    if request.query.get("api-version") != "2.0":
        raise bad_argument("InvalidApiVersion", "The query parameter api-version must be 2.0.")
    return runtime


def reply(request: web.Request, surface: Surface, response: web.Response) -> web.Response:
    """Return ``response`` unless commit-then-drop says to reset the connection instead."""
    if request.app[STATE].faults.take_drop(surface):
        drop_connection(request)
    return response


def find_job(request: web.Request, runtime: Runtime) -> Job:
    """The job named in the path, which must belong to this runtime."""
    job = request.app[STATE].jobs.get(request.match_info["job_id"])
    if job is None or job.runtime is not runtime:
        raise not_found(f"Job '{request.match_info['job_id']}' was not found.", "JobNotFound")
    return job


async def submit(request: web.Request) -> web.Response:
    """POST jobs: create a NotStarted job and answer its id as a JSON string."""
    state = request.app[STATE]
    await state.faults.before("bes_submit")
    runtime = runtime_of(request)
    body = await read_object(request)
    parsed = parse_submission(body, runtime, request.app[BLOBS])
    job = Job(
        id=uuid.uuid4().hex,
        runtime=runtime,
        inputs=parsed.inputs,
        outputs=parsed.outputs,
        data_url=parsed.data_url,
    )
    state.jobs[job.id] = job
    runtime.jobs.created += 1
    log.debug("bes.job_submitted", job_id=job.id, endpoint=runtime.label)
    return reply(request, "bes_submit", web.json_response(job.id))


async def start(request: web.Request) -> web.Response:
    """POST jobs/{id}/start: NotStarted → Running (anything else is CannotStartJob)."""
    state = request.app[STATE]
    await state.faults.before("bes_start")
    runtime = runtime_of(request)
    job = find_job(request, runtime)
    if job.status != "NotStarted":
        raise ApiError(
            400,
            "InvalidOperation",
            f"Job {job.id} is {job.status}; it cannot be started.",
            "CannotStartJob",
        )
    job.status = "Running"
    job.starts += 1
    job.model = runtime.model
    counters = runtime.jobs
    counters.started += 1
    key = job.outputs[MAIN_OUTPUT].path
    counters.started_by_output[key] = counters.started_by_output.get(key, 0) + 1
    job.task = state.spawn(run_job(state, request.app[BLOBS], job))
    log.debug("bes.job_started", job_id=job.id, endpoint=runtime.label)
    return reply(request, "bes_start", web.Response(status=200))


async def status(request: web.Request) -> web.Response:
    """GET jobs/{id}: StatusCode, Results (with fresh SAS) when Finished, Details."""
    state = request.app[STATE]
    await state.faults.before("bes_status")
    runtime = runtime_of(request)
    job = find_job(request, runtime)
    results = None
    if job.status == "Finished":
        blobs = request.app[BLOBS]
        ttl = state.settings.sas_ttl_seconds
        results = {name: blobs.result_location(ref, ttl) for name, ref in job.outputs.items()}
    body = {
        "StatusCode": job.status,
        "Results": results,
        "Details": job.details,
        "CreatedAt": iso(job.created),
    }
    return reply(request, "bes_status", web.json_response(body))


async def delete(request: web.Request) -> web.Response:
    """DELETE jobs/{id}: a NotStarted or Running job becomes Cancelled."""
    state = request.app[STATE]
    await state.faults.before("bes_delete")
    runtime = runtime_of(request)
    job = find_job(request, runtime)
    if job.status in ("NotStarted", "Running"):
        job.status = "Cancelled"
        runtime.jobs.cancelled += 1
        if job.task is not None:
            job.task.cancel()
        log.debug("bes.job_cancelled", job_id=job.id)
    return reply(request, "bes_delete", web.Response(status=200))


def add_routes(app: web.Application) -> None:
    """Register the BES routes for classic endpoints and new web services."""
    for base in (
        "/workspaces/{workspace_id}/services/{endpoint_id}",
        "/subscriptions/{subscription_id}/services/{service_id}",
    ):
        app.router.add_post(f"{base}/jobs", submit)
        app.router.add_post(f"{base}/jobs/{{job_id}}/start", start)
        app.router.add_get(f"{base}/jobs/{{job_id}}", status)
        app.router.add_delete(f"{base}/jobs/{{job_id}}", delete)
