"""Azure ML v2 command jobs (shared/PROTOCOL-V2 §2): PUT creates and runs, GET, list, cancel.

A PUT of a new name answers 201 and runs the job: ``NotStarted → Queued → Running →
Finalizing → Completed | Failed``. The job is retrainq's training script, emulated with the
classic trainer: it reads the uri input ``train`` through its datastore, trains the model spec
named (or whose data kind is named) by the literal input ``kind``, and writes the model JSON to
the output ``model`` and the evaluation table to ``evaluation``. A PUT of an existing name
answers 200 and changes only ``description``, ``tags``, ``displayName``, ``properties`` and
``isArchived``; any other difference answers 400 ``UserError`` "A job with this name already
exists". The list filters by ``tag`` (a key, or ``key=value``), ``properties``, ``jobType``
and ``listViewType`` and pages with ``$skip``. Cancel answers 202 with ``Location`` and
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import re
import uuid
from pathlib import PurePosixPath
from typing import Any

import structlog
from aiohttp import web

from emulator.blobio import BlobError, BlobRef, BlobStore
from emulator.errors import ApiError, read_object
from emulator.faults import drop_connection
from emulator.state import BLOBS, STATE, EmulatorState, bearer_matches, iso, utcnow
from emulator.training import (
    Experiment,
    ModelSpec,
    TrainingError,
    evaluation_table,
    run_experiment,
    trivial_experiment,
)
from emulator.v2.lists import matches, page, parse_filter, view_matches
from emulator.v2.state import V2_STATE, V2Job, V2Operation, V2State
from emulator.v2.workspace import PROVIDER, WORKSPACE_PATH, checked, workspace_id

log = structlog.get_logger("emulator.v2.jobs")

MUTABLE = frozenset({"description", "tags", "displayName", "properties", "isArchived"})
INPUT_TYPES = frozenset(
    {"literal", "uri_file", "uri_folder", "mltable", "custom_model", "mlflow_model", "triton_model"}
)
OUTPUT_TYPES = INPUT_TYPES - {"literal"}
FAILURE_REASON = "azureml.failureReason"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
_DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[Gg]roups/[^/]+/"
    r"(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<datastore>[A-Za-z0-9_]+)/paths/(?P<path>\S+)$"
)
OPERATIONS_PATH = (
    f"/subscriptions/{{subscription_id}}/providers/{PROVIDER}"
    "/locations/{location}/mfeOperationResults/{operation_id}"
)


def _user_error(message: str, detail: str | None = None) -> ApiError:
    return ApiError(400, "UserError", message, detail)


def job_json(request: web.Request, job: V2Job) -> dict[str, Any]:
    """A JobBase resource as GET and PUT answer it."""
    props = copy.deepcopy(job.body["properties"])
    props["status"] = job.status
    user = dict(props.get("properties") or {})
    if job.failure is not None:
        user[FAILURE_REASON] = json.dumps(job.failure)
    props["properties"] = user
    return {
        "id": f"{workspace_id(request)}/jobs/{job.name}",
        "name": job.name,
        "type": f"{PROVIDER}/workspaces/jobs",
        "properties": props,
        "systemData": {"createdAt": iso(job.created)},
    }


def immutable_part(props: dict[str, Any]) -> dict[str, Any]:
    """The job properties a re-PUT may not change (everything but ``MUTABLE``)."""
    return {key: value for key, value in props.items() if key not in MUTABLE}


def datastore_ref(v2: V2State, workspace: str, uri: str) -> BlobRef:
    """The blob behind an ``azureml://datastores/{ds}/paths/{path}`` URI."""
    match = _DATASTORE_URI.fullmatch(uri)
    if match is None:
        raise _user_error(f"'{uri}' is not an azureml://datastores/<name>/paths/<path> URI.")
    datastore = v2.datastores.get((workspace, match["datastore"].lower()))
    if datastore is None:
        raise _user_error(f"Datastore '{match['datastore']}' was not found in the workspace.")
    path = match["path"].lstrip("/")
    return BlobRef(
        relative_location=f"{datastore.container}/{path}",
        connection_string=datastore.connection_string,
    )


def validate_job(v2: V2State, workspace: str, props: dict[str, Any]) -> None:
    """Refuse a body that is no command job or names types or datastores that do not exist."""
    if props.get("jobType") != "Command":
        raise _user_error("Only jobType Command is supported here.")
    for name in ("command", "environmentId"):
        if not isinstance(props.get(name), str) or not props[name]:
            raise _user_error(f"properties.{name} is required.")
    for section, types, field in (
        ("inputs", INPUT_TYPES, "jobInputType"),
        ("outputs", OUTPUT_TYPES, "jobOutputType"),
    ):
        entries = props.get(section) or {}
        if not isinstance(entries, dict):
            raise _user_error(f"properties.{section} must be an object.")
        for key, entry in entries.items():
            if not isinstance(entry, dict) or entry.get(field) not in types:
                raise _user_error(
                    f"properties.{section}.{key}.{field} is not one of {sorted(types)}."
                )
            if isinstance(entry.get("uri"), str):
                datastore_ref(v2, workspace, entry["uri"])


def find_job(request: web.Request, v2: V2State, workspace: str) -> V2Job:
    """The job named in the path, or 404."""
    name = request.match_info["name"]
    job = v2.jobs.get((workspace, name))
    if job is None:
        raise ApiError(404, "ResourceNotFound", f"Job '{name}' was not found.")
    return job


def _reply(v2: V2State, request: web.Request, response: web.Response) -> web.Response:
    if v2.faults.take_drop():
        drop_connection(request)
    return response


async def put_job(request: web.Request) -> web.Response:
    """PUT jobs/{name}: create and run (201), same body (200), changed body (400)."""
    v2 = request.app[V2_STATE]
    await v2.faults.before()
    _, workspace = checked(request)
    name = request.match_info["name"]
    if not _NAME.fullmatch(name):
        raise _user_error(f"Invalid job name '{name}'.")
    body = await read_object(request)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _user_error("The body needs a properties object.")
    validate_job(v2, workspace.name, props)
    existing = v2.jobs.get((workspace.name, name))
    if existing is not None:
        if immutable_part(existing.body["properties"]) != immutable_part(props):
            existing.puts_refused += 1
            raise _user_error(
                "A job with this name already exists. If you are trying to create a new job, "
                "use a different name. If you are trying to update an existing job, the "
                "existing job's Settings, Inputs, Outputs, Jobs, InputBindings, OutputBindings "
                "cannot be changed. Only description, tags, displayName, properties, and "
                "isArchived can be updated.",
                "Immutable",
            )
        for key in MUTABLE:
            if key in props:
                existing.body["properties"][key] = copy.deepcopy(props[key])
        existing.puts_unchanged += 1
        return _reply(v2, request, web.json_response(job_json(request, existing), status=200))
    job = V2Job(name=name, workspace=workspace.name, body={"properties": copy.deepcopy(props)})
    v2.jobs[(workspace.name, name)] = job
    state = request.app[STATE]
    job.task = state.spawn(run_job(state, v2, request.app[BLOBS], job))
    log.debug("v2.job_created", job_name=name, workspace=workspace.name)
    return _reply(v2, request, web.json_response(job_json(request, job), status=201))


async def get_job(request: web.Request) -> web.Response:
    """GET jobs/{name}."""
    v2 = request.app[V2_STATE]
    await v2.faults.before()
    _, workspace = checked(request)
    v2.count("job_get")
    job = find_job(request, v2, workspace.name)
    return _reply(v2, request, web.json_response(job_json(request, job)))


def listed(job: V2Job, request: web.Request) -> bool:
    """Whether the job passes the list's ``tag``, ``properties``, ``jobType`` and view."""
    props = job.body["properties"]
    query = request.query
    job_type = query.get("jobType")
    return (
        (job_type is None or props.get("jobType") == job_type)
        and matches(props.get("tags"), parse_filter(query.get("tag")))
        and matches(props.get("properties"), parse_filter(query.get("properties")))
        and view_matches(query.get("listViewType"), bool(props.get("isArchived")))
    )


async def list_jobs(request: web.Request) -> web.Response:
    """GET jobs: one page of the workspace's jobs that pass the filters, oldest first."""
    v2 = request.app[V2_STATE]
    await v2.faults.before()
    _, workspace = checked(request)
    v2.count("job_list_page")
    jobs = [j for j in v2.jobs.values() if j.workspace == workspace.name and listed(j, request)]
    response = page(request, jobs, lambda job: job_json(request, job), v2.config.list_page_size)
    return _reply(v2, request, response)


async def cancel_job(request: web.Request) -> web.Response:
    """POST jobs/{name}/cancel: 202 with ``Location``; a job that ended stays as it was."""
    v2 = request.app[V2_STATE]
    await v2.faults.before()
    _, workspace = checked(request)
    job = find_job(request, v2, workspace.name)
    job.cancels += 1
    if not job.terminal:
        job.status = "CancelRequested"
        if job.task is not None:
            job.task.cancel()
    operation = V2Operation(uuid.uuid4().hex, job)
    v2.operations[operation.id] = operation
    state = request.app[STATE]
    location = (
        f"{state.base_url}/subscriptions/{request.match_info['subscription_id']}"
        f"/providers/{PROVIDER}/locations/{workspace.location}"
        f"/mfeOperationResults/{operation.id}?api-version={request.query['api-version']}"
    )
    headers = {"Location": location, "Retry-After": "1"}
    return _reply(v2, request, web.Response(status=202, headers=headers))


async def operation_result(request: web.Request) -> web.Response:
    """GET a ``Location`` of a cancel (202 while the job still runs, then 200) or of an
    endpoint's operation (202 while it runs, then 200)."""
    state = request.app[STATE]
    if not bearer_matches(request.headers.get("Authorization"), state.config.arm.token):
        raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.")
    v2 = request.app[V2_STATE]
    operation = v2.operations.get(request.match_info["operation_id"])
    if operation is None:
        lro = v2.lros.get(request.match_info["operation_id"])  # an endpoint's operation
        if lro is None:
            raise ApiError(404, "ResourceNotFound", "The operation was not found.")
        if lro.status == "InProgress":
            return web.Response(status=202, headers={"Retry-After": "1"})
        return web.Response(status=200)
    if not operation.job.terminal:
        return web.Response(status=202, headers={"Retry-After": "1"})
    return web.Response(status=200)


class JobFailure(Exception):
    """The training script failed: an Azure ML style failure reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _spec(state: EmulatorState, kind: object) -> ModelSpec:
    for spec in state.config.models:
        if kind in (spec.name, spec.datagen):
            return spec
    raise JobFailure("UserError", f"the training script knows no kind {kind!r}")


def _uri(props: dict[str, Any], section: str, name: str) -> str:
    entry = (props.get(section) or {}).get(name)
    uri = entry.get("uri") if isinstance(entry, dict) else None
    if not isinstance(uri, str):
        raise JobFailure("UserError", f"the training script needs {section[:-1]} '{name}'")
    return uri


def _output_ref(v2: V2State, job: V2Job, name: str, file_name: str) -> BlobRef:
    uri = _uri(job.body["properties"], "outputs", name)
    if uri.endswith("/"):  # a folder output: the script writes one file into it
        uri += file_name
    return datastore_ref(v2, job.workspace, uri)


async def _experiment(
    state: EmulatorState, v2: V2State, blobs: BlobStore, job: V2Job
) -> Experiment:
    props = job.body["properties"]
    kind = ((props.get("inputs") or {}).get("kind") or {}).get("value")
    spec = _spec(state, kind)
    if state.settings.instant:
        return trivial_experiment(spec)
    data = await blobs.read(datastore_ref(v2, job.workspace, _uri(props, "inputs", "train")))
    return await asyncio.to_thread(run_experiment, data, spec)


async def _work(state: EmulatorState, v2: V2State, blobs: BlobStore, job: V2Job) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    job.status = "Queued"
    await asyncio.sleep(0)
    job.status = "Running"
    experiment = await _experiment(state, v2, blobs, job)
    if v2.faults.job_fails():
        raise JobFailure("UserError", "the training script failed (injected fault)")
    remaining = state.settings.min_job_seconds - (loop.time() - began)
    if remaining > 0:
        await asyncio.sleep(remaining)
    job.status = "Finalizing"
    model = _output_ref(v2, job, "model", "model.ilearner")
    evaluation = _output_ref(v2, job, "evaluation", "evaluation.csv")
    suffix = PurePosixPath(evaluation.blob).suffix.lower()
    table = evaluation_table(experiment.metrics, suffix if suffix in (".tsv", ".arff") else ".csv")
    await asyncio.gather(
        blobs.write(model, experiment.model.to_json()), blobs.write(evaluation, table)
    )
    if not v2.faults.config.jobs_log_no_metrics:
        logged = int(utcnow().timestamp() * 1000)
        job.metrics = {
            key: (value, logged, 0)
            for key, value in experiment.metrics.items()
            if math.isfinite(value)
        }
    job.status = "Completed"


def _fail(job: V2Job, code: str, message: str) -> None:
    if not job.terminal:
        job.status = "Failed"
        job.failure = {"code": code, "message": message}
        log.info("v2.job_failed", job_name=job.name, code=code, message=message)


async def run_job(state: EmulatorState, v2: V2State, blobs: BlobStore, job: V2Job) -> None:
    """Run a created job to Completed or Failed; a cancel ends it Canceled."""
    try:
        await _run(state, v2, blobs, job)
    finally:
        job.ended = utcnow()


async def _run(state: EmulatorState, v2: V2State, blobs: BlobStore, job: V2Job) -> None:
    try:
        await _work(state, v2, blobs, job)
    except asyncio.CancelledError:
        job.status = "Canceled"
        raise
    except JobFailure as exc:
        _fail(job, exc.code, exc.message)
    except ApiError as exc:  # an output's datastore went away while the job ran
        _fail(job, "UserError", exc.message)
    except BlobError as exc:
        _fail(job, "UserError", str(exc))
    except TrainingError as exc:
        _fail(job, "ScriptExecutionError", str(exc))
    except Exception as exc:  # a job must end; never leave it Running
        log.exception("v2.job_crashed", job_name=job.name)
        _fail(job, "SystemError", f"{type(exc).__name__}: {exc}")


def add_routes(app: web.Application) -> None:
    """Register the job routes and the operation results of cancels."""
    app.router.add_put(f"{WORKSPACE_PATH}/jobs/{{name}}", put_job)
    app.router.add_get(f"{WORKSPACE_PATH}/jobs", list_jobs)
    app.router.add_get(f"{WORKSPACE_PATH}/jobs/{{name}}", get_job)
    app.router.add_post(f"{WORKSPACE_PATH}/jobs/{{name}}/cancel", cancel_job)
    app.router.add_get(OPERATIONS_PATH, operation_result)
