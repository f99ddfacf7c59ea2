"""Batch Execution Service 2.0 (PROTOCOL.md §2-3): submit, start, status, delete, and the job.

A started job waits for one of its endpoint's slots (``max_concurrent_jobs``, reporting
``Running`` meanwhile), reads its input CSV (blob or data-URI GlobalParameter), trains in a
thread, waits out ``min_job_seconds`` and writes ``output1`` (model JSON) and ``output2``
(evaluation table). Failures become ``Failed`` with ``Details``; DELETE cancels.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import PurePosixPath
from typing import Any

import structlog
from aiohttp import web

from emulator.blobio import BlobError, BlobRef, BlobStore
from emulator.config import Surface
from emulator.errors import (
    ApiError,
    bad_argument,
    not_found,
    read_object,
    request_body_invalid,
    unauthorized,
)
from emulator.faults import drop_connection
from emulator.state import BLOBS, STATE, EmulatorState, Job, Runtime, iso
from emulator.training import (
    Experiment,
    TrainingError,
    evaluation_table,
    run_experiment,
    trivial_experiment,
)

log = structlog.get_logger("emulator.bes")

MODEL_OUTPUT = "output1"
EVALUATION_OUTPUT = "output2"
INPUT_NAME = "input1"
DATASET_EXTENSIONS = (".csv", ".tsv", ".arff")
REF_FIELDS = {"ConnectionString", "RelativeLocation", "BaseLocation", "SasBlobToken"}


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


def parse_ref(raw: Any, blobs: BlobStore, role: str) -> BlobRef:
    """Validate one blob reference of a submission."""
    if not isinstance(raw, dict) or not raw.keys() <= REF_FIELDS:
        raise request_body_invalid(
            f"{role}: a blob reference has only the fields {sorted(REF_FIELDS)}."
        )
    if any(v is not None and not isinstance(v, str) for v in raw.values()):
        raise request_body_invalid(f"{role}: blob reference fields are strings.")
    relative = (raw.get("RelativeLocation") or "").lstrip("/")
    container, _, blob = relative.partition("/")
    if not container or not blob:
        code = "InputBlobRelativeLocationInvalid" if role.startswith("input") else "BadArgument"
        raise bad_argument(code, f"{role}: RelativeLocation must be 'container/path/blob'.")
    ref = BlobRef(
        relative_location=relative,
        connection_string=raw.get("ConnectionString") or None,
        base_location=raw.get("BaseLocation") or None,
        sas_blob_token=raw.get("SasBlobToken") or None,
    )
    if ref.connection_string is not None:
        try:
            blobs.service(ref.connection_string)
        except BlobError as exc:
            raise bad_argument(exc.code, f"{role}: {exc.args[0]}") from exc
    elif ref.base_location is None or ref.sas_blob_token is None:
        raise bad_argument(
            "MissingInputBlobInformation",
            f"{role}: give ConnectionString, or BaseLocation and SasBlobToken.",
        )
    return ref


def _check_extension(name: str, ref: BlobRef) -> None:
    suffix = PurePosixPath(ref.blob).suffix.lower()
    allowed = (".ilearner",) if name == MODEL_OUTPUT else DATASET_EXTENSIONS
    if suffix not in allowed:
        raise bad_argument(
            "InvalidBlobExtension",
            f"The blob reference for {name} has an invalid extension '{suffix}'; "
            f"supported: {', '.join(allowed)}.",
        )


def parse_submission(
    body: dict[str, Any], runtime: Runtime, blobs: BlobStore
) -> tuple[dict[str, BlobRef], dict[str, BlobRef], str | None]:
    """Validate a submit body: (inputs, outputs, data URL from a GlobalParameter)."""
    if body.get("Input") is not None and body.get("Inputs") is not None:
        raise bad_argument(
            "BatchJobInputsTooManySpecified", "Give either Input or Inputs, not both."
        )
    raw_inputs = (
        {INPUT_NAME: body["Input"]} if body.get("Input") is not None else body.get("Inputs")
    )
    raw_outputs = body.get("Outputs")
    params = body.get("GlobalParameters")
    for label, value in (
        ("Inputs", raw_inputs),
        ("Outputs", raw_outputs),
        ("GlobalParameters", params),
    ):
        if value is not None and not isinstance(value, dict):
            raise request_body_invalid(f"{label} must be a JSON object.")
    inputs: dict[str, BlobRef] = {}
    for name, raw in (raw_inputs or {}).items():
        if name != INPUT_NAME:
            raise bad_argument(
                "InvalidInputNames", f"Unknown input '{name}'; this service has {INPUT_NAME}."
            )
        inputs[name] = parse_ref(raw, blobs, name)
    outputs: dict[str, BlobRef] = {}
    for name, raw in (raw_outputs or {}).items():
        if name not in (MODEL_OUTPUT, EVALUATION_OUTPUT):
            raise bad_argument(
                "InvalidOutputOverrideName",
                f"Unknown output '{name}'; the outputs are {MODEL_OUTPUT}, {EVALUATION_OUTPUT}.",
            )
        outputs[name] = parse_ref(raw, blobs, name)
        _check_extension(name, outputs[name])
    data_url = None
    for name, value in (params or {}).items():
        if name not in runtime.data_uri_parameters:
            raise bad_argument("UnexpectedParameter", f"Unexpected global parameter '{name}'.")
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise bad_argument(
                "BadParameterValue", f"Global parameter '{name}' must be an http(s) URL."
            )
        data_url = value
    if inputs and data_url:
        raise bad_argument(
            "DuplicateInputInBatchCall", "Give the data either as input1 or as a URI parameter."
        )
    if not inputs and data_url is None:
        raise bad_argument(
            "BatchJobInputsNotSpecified",
            f"This service needs {INPUT_NAME} or one of the global parameters "
            f"{runtime.data_uri_parameters}.",
        )
    if MODEL_OUTPUT not in outputs:
        raise bad_argument("BatchJobOutputsNotSpecified", f"Outputs must name {MODEL_OUTPUT}.")
    return inputs, outputs, data_url


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
    inputs, outputs, data_url = parse_submission(body, runtime, request.app[BLOBS])
    job = Job(
        id=uuid.uuid4().hex, runtime=runtime, inputs=inputs, outputs=outputs, data_url=data_url
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
    counters = runtime.jobs
    counters.started += 1
    key = job.outputs[MODEL_OUTPUT].path
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


class JobFailure(Exception):
    """A job failed with an Azure ML style ``Details`` text."""


async def run_job(state: EmulatorState, blobs: BlobStore, job: Job) -> None:
    """Run a started job to Finished or Failed, holding one endpoint slot while working."""
    counters = job.runtime.jobs
    counters.waiting_now += 1
    waiting = True
    try:
        async with job.runtime.slots:
            counters.waiting_now -= 1
            waiting = False
            counters.running_now += 1
            counters.max_concurrent_running = max(
                counters.max_concurrent_running, counters.running_now
            )
            try:
                await _work(state, blobs, job)
            finally:
                counters.running_now -= 1
    finally:
        if waiting:
            counters.waiting_now -= 1


async def _work(state: EmulatorState, blobs: BlobStore, job: Job) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    counters = job.runtime.jobs
    try:
        experiment = await _experiment(state, blobs, job)
        if state.faults.job_fails():
            raise JobFailure("ModuleExecutionError: the job failed (injected fault).")
        remaining = state.settings.min_job_seconds - (loop.time() - began)
        if remaining > 0:
            await asyncio.sleep(remaining)
        await _write_outputs(blobs, job, experiment)
    except (BlobError, JobFailure) as exc:
        _fail(job, str(exc))
    except TrainingError as exc:
        _fail(job, f"ModuleExecutionError: {exc}")
    except Exception as exc:  # a job must end; never leave it Running
        log.exception("bes.job_crashed", job_id=job.id)
        _fail(job, f"InternalError: {type(exc).__name__}: {exc}")
    else:
        if job.status == "Running":
            job.status = "Finished"
            counters.finished += 1
            log.debug("bes.job_finished", job_id=job.id)


def _fail(job: Job, details: str) -> None:
    if job.status == "Running":
        job.status = "Failed"
        job.details = details
        job.runtime.jobs.failed += 1
        log.info("bes.job_failed", job_id=job.id, details=details)


async def _experiment(state: EmulatorState, blobs: BlobStore, job: Job) -> Experiment:
    spec = job.runtime.spec
    if state.settings.instant:
        return trivial_experiment(spec)
    if job.data_url is not None:
        data = await blobs.fetch_url(job.data_url)
    else:
        data = await blobs.read(job.inputs[INPUT_NAME])
    return await asyncio.to_thread(run_experiment, data, spec)


async def _write_outputs(blobs: BlobStore, job: Job, experiment: Experiment) -> None:
    writes = []
    for name, ref in job.outputs.items():
        if name == MODEL_OUTPUT:
            data = experiment.model.to_json()
        else:
            data = evaluation_table(experiment.metrics, PurePosixPath(ref.blob).suffix.lower())
        writes.append(blobs.write(ref, data))
    await asyncio.gather(*writes)


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
