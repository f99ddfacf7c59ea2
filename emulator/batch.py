"""Running a started BES job to its end: the shared lifecycle and the two kinds of work.

A started job waits for one of its endpoint's slots (``max_concurrent_jobs``, reporting
``Running`` meanwhile), reads its input CSV (blob or data-URI GlobalParameter), does its
work off the event loop, waits out ``min_job_seconds`` (a training job with ``job_durations``
on: the longer of that and its drawn duration, ``emulator/durations.py``) and writes its
outputs; failures become ``Failed`` with ``Details``, and DELETE cancels the task. The work
depends on the runtime: a training runtime fits the service's model spec and writes
``output1`` (model JSON) and ``output2`` (evaluation table); a predictive runtime scores the
rows with the model it served when the job started and writes ``output1`` (the scored
dataset).
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

import structlog

from emulator.blobio import BlobError, BlobStore
from emulator.durations import JobDurations, count_rows, duration_key, job_seconds
from emulator.scoring import score_dataset
from emulator.state import EmulatorState, Job
from emulator.submission import INPUT_NAME, MAIN_OUTPUT
from emulator.training import (
    Experiment,
    TrainingError,
    evaluation_table,
    run_experiment,
    trivial_experiment,
)

log = structlog.get_logger("emulator.bes")


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
        lasts = state.settings.min_job_seconds
        if job.runtime.kind == "training":
            outputs, planned = await _training_outputs(state, blobs, job)
            lasts = max(lasts, planned)
        else:
            outputs = await _scoring_outputs(blobs, job)
        if state.faults.job_fails():
            raise JobFailure("ModuleExecutionError: the job failed (injected fault).")
        remaining = lasts - (loop.time() - began)
        if remaining > 0:
            await asyncio.sleep(remaining)
        await asyncio.gather(*(blobs.write(job.outputs[n], data) for n, data in outputs.items()))
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


async def _read_input(blobs: BlobStore, job: Job) -> bytes:
    if job.data_url is not None:
        return await blobs.fetch_url(job.data_url)
    return await blobs.read(job.inputs[INPUT_NAME])


def _extension(job: Job, name: str) -> str:
    return PurePosixPath(job.outputs[name].blob).suffix.lower()


def _input_location(job: Job) -> str:
    return job.data_url if job.data_url is not None else job.inputs[INPUT_NAME].path


def _planned_seconds(state: EmulatorState, job: Job, durations: JobDurations, data: bytes) -> float:
    key = duration_key(_input_location(job), job.outputs[MAIN_OUTPUT].path)
    seconds = job_seconds(durations, state.seed, key, count_rows(data))
    job.runtime.jobs.planned_seconds_by_output[job.outputs[MAIN_OUTPUT].path] = seconds
    return seconds


async def _training_outputs(
    state: EmulatorState, blobs: BlobStore, job: Job
) -> tuple[dict[str, bytes], float]:
    """The outputs of a training job and how long it lasts at least (0: no drawn duration)."""
    spec = job.runtime.spec
    durations = state.settings.job_durations
    # Instant mode reads no data, unless a duration follows from its rows.
    data = None
    if durations is not None or not state.settings.instant:
        data = await _read_input(blobs, job)
    planned = (
        0.0 if durations is None or data is None else _planned_seconds(state, job, durations, data)
    )
    experiment: Experiment
    if state.settings.instant or data is None:
        experiment = trivial_experiment(spec)
    else:
        experiment = await asyncio.to_thread(run_experiment, data, spec)
    outputs = {
        name: experiment.model.to_json()
        if name == MAIN_OUTPUT
        else evaluation_table(experiment.metrics, _extension(job, name))
        for name in job.outputs
    }
    return outputs, planned


async def _scoring_outputs(blobs: BlobStore, job: Job) -> dict[str, bytes]:
    model = job.model
    if model is None:
        raise JobFailure(f"ModuleExecutionError: {job.runtime.no_model_message()}")
    data = await _read_input(blobs, job)
    scored = await asyncio.to_thread(score_dataset, model, data, _extension(job, MAIN_OUTPUT))
    return {MAIN_OUTPUT: scored}
