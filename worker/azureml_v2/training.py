"""The training port on Azure ML v2: one command job per run, under a name derived from the run.

``submit`` is the job's PUT, which creates and starts it (shared/PROTOCOL-V2 §2.5): the body
is built only from the stored run and the service's settings, so a retried submit sends the
same bytes and meets the same job. ``start`` only checks that the job exists. The data, the
model and the evaluation are datastore paths on the worker's own blob container. The gate's
metrics come from the job's MLflow run (``runs/get``), else from the evaluation output,
read back as a blob like classic's. Status reads come from tag-filtered
listings shared by the runs of one submission window (``worker/azureml_v2/listings.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from worker.azureml.errors import AzureMLError, PermanentError
from worker.azureml_v2.jobs import JobInfo, JobsClient, is_name_taken
from worker.azureml_v2.listings import Listings, poll_group, poll_tag
from worker.azureml_v2.mlflow import MlflowClient, metrics_table
from worker.blobs import BlobStore
from worker.classic import MAX_EVALUATION_BYTES, UnknownEndpoint
from worker.datapaths import DataPathError, check_data_path
from worker.errors import RunFailed
from worker.run.model import Run
from worker.run.ports import JobReport
from worker.settings import AzureMLV2Config

log = structlog.get_logger("retrainq.azureml_v2")

MAX_JOB_NAME = 60
_RUN_PART = 12
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def job_name(run: Run) -> str:
    """The run's job name: ``rq-{tenant}-{seq}-{run id head}``, at most 60 characters.

    Lowercase letters, digits and ``-``. The run id part keeps names apart when a tenant id
    comes back after offboarding with its sequence started over: a workspace keeps every job
    name it ever had, and a name refers to one job forever.
    """
    tail = f"-{run.seq}-{run.id[:_RUN_PART].lower()}"
    room = MAX_JOB_NAME - len("rq-") - len(tail)
    tenant = _NOT_NAME.sub("-", run.tenant_id.lower())[:room].strip("-") or "t"
    return f"rq-{tenant}{tail}"


def datastore_uri(datastore: str, path: str) -> str:
    """``azureml://datastores/{datastore}/paths/{path}``: a blob of the datastore's container."""
    return f"azureml://datastores/{datastore}/paths/{path.lstrip('/')}"


def asset_id(workspace_path: str, kind: str, value: str) -> str:
    """A code or environment id: ``value`` when it is a full id, else one in the workspace."""
    if value.startswith(("/subscriptions/", "azureml://")):
        return value
    return f"{workspace_path}/{kind}/{value}"


def iso_duration(seconds: int) -> str:
    """Whole seconds as an ISO-8601 duration (``PT3600S``)."""
    return f"PT{seconds}S"


def command_job_body(run: Run, config: AzureMLV2Config) -> dict[str, Any]:
    """The command job of ``run`` (PROTOCOL-V2 §2.2); byte-stable for one run and settings."""
    if run.data_path is None:
        raise RunFailed("an azureml_v2 run needs the tenant's data blob", "no_data")
    if run.global_parameters:
        names = ", ".join(sorted(run.global_parameters))
        raise RunFailed(
            f"azureml_v2 training services take no global parameters (given: {names})",
            "unsupported_parameters",
        )
    workspace = config.workspace_path()
    tags = {
        "retrainq-tenant": run.tenant_id,
        "retrainq-run": run.id,
        poll_tag(run, config.poll_group_minutes): poll_group(run, config.poll_group_minutes),
    }
    properties = {"retrainq.seq": str(run.seq), "retrainq.run": run.id}
    if run.batch_id is not None:
        properties["retrainq.batch"] = run.batch_id

    def output(path: str) -> dict[str, str]:
        return {
            "jobOutputType": "uri_file",
            "mode": "Upload",
            "uri": datastore_uri(config.datastore, path),
        }

    return {
        "properties": {
            "jobType": "Command",
            "experimentName": config.experiment,
            "displayName": f"{run.tenant_id} run {run.seq}",
            "command": config.command,
            "codeId": asset_id(workspace, "codes", config.code),
            "environmentId": asset_id(workspace, "environments", config.environment),
            "computeId": f"{workspace}/computes/{config.compute}",
            "inputs": {
                "train": {
                    "jobInputType": "uri_file",
                    "mode": "ReadOnlyMount",
                    "uri": datastore_uri(config.datastore, run.data_path),
                },
                "kind": {"jobInputType": "literal", "value": config.model_kind},
            },
            "outputs": {
                "model": output(run.outputs.model_path),
                "evaluation": output(run.outputs.evaluation_path),
            },
            "limits": {
                "jobLimitsType": "Command",
                "timeout": iso_duration(config.job_timeout_seconds),
            },
            "resources": {"instanceCount": 1},
            "environmentVariables": {"RETRAINQ_RUN": run.id},
            "tags": tags,
            "properties": properties,
        }
    }


class AzureMLV2Training:
    """Training jobs in the Azure ML v2 workspaces of the ``azureml_v2`` training services."""

    def __init__(
        self,
        clients: Mapping[str, JobsClient],
        services: Mapping[str, AzureMLV2Config],
        blobs: BlobStore,
        shared_prefixes: Sequence[str] = (),
        listings: Listings | None = None,
        mlflow: Mapping[str, MlflowClient] | None = None,
    ) -> None:
        self.clients = clients
        self.services = services
        self.blobs = blobs
        self.shared_prefixes = tuple(shared_prefixes)
        self.mlflow = dict(mlflow or {})
        self.listings = listings or Listings(
            min((c.list_fresh_seconds for c in services.values()), default=10.0)
        )

    def _service(self, run: Run) -> tuple[JobsClient, AzureMLV2Config]:
        client = self.clients.get(run.training_service)
        config = self.services.get(run.training_service)
        if client is None or config is None:
            raise UnknownEndpoint(
                f"training service {run.training_service!r} is not an azureml_v2 service"
            )
        return client, config

    def job_body(self, run: Run) -> dict[str, Any]:
        """The run's job body, after checking again that its data is the tenant's own."""
        _, config = self._service(run)
        try:  # checked when the run was queued; again here, where the job is defined
            if run.data_path is not None:
                check_data_path(run.tenant_id, run.data_path, self.shared_prefixes)
        except DataPathError as exc:
            raise RunFailed(str(exc), exc.code) from exc
        return command_job_body(run, config)

    async def submit(self, run: Run) -> str:
        """PUT the run's job (which starts it); the same run always meets the same job."""
        client, _ = self._service(run)
        name, body = job_name(run), self.job_body(run)
        try:
            job = await client.put(name, body)
        except PermanentError as exc:
            if not is_name_taken(exc):
                raise
            # The run's name is taken by a job of an earlier PUT of this run whose body
            # differs (the settings changed between tries): that job is the run's job.
            job = await client.get(name)
            log.warning("v2.job_body_changed", job_name=name, status=job.status)
            return job.name
        log.info("v2.job_put", job_name=name, created=job.created, status=job.status)
        return job.name

    async def start(self, run: Run, job_id: str) -> None:
        """Nothing to start (the PUT did); checks that the job exists."""
        client, _ = self._service(run)
        await client.get(job_id)

    async def status(self, run: Run, job_id: str) -> JobReport:
        """The job's state and failure reason, from its window's listing when it is there."""
        client, config = self._service(run)
        job = await self._listed(run, job_id, client, config) or await client.get(job_id)
        return JobReport(job.state, job.failure)

    async def _listed(
        self, run: Run, job_id: str, client: JobsClient, config: AzureMLV2Config
    ) -> JobInfo | None:
        if not config.poll_by_list:
            return None
        tag = poll_tag(run, config.poll_group_minutes)
        listing = await self.listings.get(
            (run.training_service, tag), lambda: client.list_tagged(tag)
        )
        return listing.state_of(run, job_id) if listing is not None else None

    async def cancel(self, run: Run, job_id: str) -> None:
        """Ask for the job to be cancelled (its record stays: the name is never reused)."""
        client, _ = self._service(run)
        await client.cancel(job_id)

    async def evaluation(self, run: Run) -> str:
        """The job's metrics from its MLflow run as an evaluation table; when MLflow has none
        (or cannot be read), the evaluation table the job wrote at the run's evaluation path."""
        _, config = self._service(run)
        tracking = self.mlflow.get(run.training_service)
        if config.metrics_source == "mlflow" and tracking is not None:
            name = run.bes_job_id or job_name(run)
            try:
                metrics = await tracking.metrics(name)
            except AzureMLError as exc:
                log.warning("v2.mlflow_unavailable", job_name=name, error=str(exc))
            else:
                if metrics:
                    log.info("v2.metrics_from_mlflow", job_name=name, metrics=len(metrics))
                    return metrics_table(metrics)
                log.info("v2.mlflow_no_metrics", job_name=name)
        data = await self.blobs.download(
            run.outputs.evaluation_path, max_bytes=MAX_EVALUATION_BYTES
        )
        return data.decode("utf-8", errors="replace")
