"""Adapters of the run's ports to Azure ML Studio (classic): BES training jobs.

The deploy target is ``worker/deploy.py``.

Each adapter turns a port call into calls of the typed clients in ``worker/azureml/`` and
nothing more; what to do with the answers is the run machine's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import structlog

from worker.azureml.bes import BesClient, BesJobRequest, JobState
from worker.azureml.errors import CannotStartJobError
from worker.azureml.locations import BlobReference
from worker.datapaths import DataPathError, check_data_path, check_global_parameters
from worker.errors import RunFailed
from worker.run.model import Run, training_data_path
from worker.run.ports import BlobStorage, JobReport
from worker.settings import TrainingServiceConfig

log = structlog.get_logger("retrainq.classic")

MAX_EVALUATION_BYTES = 1 << 20


class UnknownEndpoint(LookupError):
    """A run refers to a training service or BES endpoint the settings do not have."""


async def start_once(client: BesClient, job_id: str) -> None:
    """Start a BES job; one found past ``NotStarted`` was started by an earlier try."""
    try:
        await client.start(job_id)
    except CannotStartJobError:
        status = await client.status(job_id)
        if status.state is JobState.NOT_STARTED:
            raise
        log.info("bes.already_started", status=status.state.value)


class ClassicTraining:
    """Training jobs on the BES endpoints of classic training web services."""

    def __init__(
        self,
        clients: Mapping[tuple[str, int], BesClient],
        services: Mapping[str, TrainingServiceConfig],
        blobs: BlobStorage,
        sas_ttl: timedelta,
        shared_prefixes: Sequence[str] = (),
    ) -> None:
        self.clients = clients
        self.services = services
        self.blobs = blobs
        self.sas_ttl = sas_ttl
        self.shared_prefixes = tuple(shared_prefixes)

    def client(self, run: Run) -> BesClient:
        """The BES client of the endpoint the run's slot is on."""
        key = (run.training_service, run.bes_endpoint or 0)
        try:
            return self.clients[key]
        except KeyError:
            raise UnknownEndpoint(
                f"no BES endpoint {key[1]} of service {key[0]!r} is configured"
            ) from None

    def job_request(self, run: Run) -> BesJobRequest:
        """The submit body of the run's job: its data, its outputs, its parameters."""
        service = self.services.get(run.training_service)
        if service is None:
            raise UnknownEndpoint(f"training service {run.training_service!r} is not configured")
        outputs = {
            service.model_output: self.blobs.reference(run.outputs.model_path),
            service.evaluation_output: self.blobs.reference(run.outputs.evaluation_path),
        }
        try:  # checked when the run was queued; again here, where its SAS is minted
            for path in {run.data_path, training_data_path(run)} - {None}:
                check_data_path(run.tenant_id, path or "", self.shared_prefixes)
            check_global_parameters(run.global_parameters, service.data_parameter)
        except DataPathError as exc:
            raise RunFailed(str(exc), exc.code) from exc
        parameters = dict(run.global_parameters)
        inputs = None
        data_path = training_data_path(run)  # the training split in holdout mode
        if data_path is not None:
            location = self.blobs.read_sas(data_path, self.sas_ttl)
            if service.data_parameter:
                parameters[service.data_parameter] = location.url.get_secret_value()
            else:
                reference = BlobReference(
                    base_location=location.base_location,
                    sas_blob_token=location.sas_blob_token,
                    relative_location=location.relative_location,
                )
                inputs = {service.input_name: reference}
        return BesJobRequest(inputs=inputs, outputs=outputs, global_parameters=parameters or None)

    async def submit(self, run: Run) -> str:
        """Create the run's BES job (not started)."""
        client = self.client(run)
        return await client.submit(self.job_request(run))

    async def start(self, run: Run, job_id: str) -> None:
        """Start the job; a job that left ``NotStarted`` was started by an earlier try."""
        await start_once(self.client(run), job_id)

    async def status(self, run: Run, job_id: str) -> JobReport:
        """The job's state and failure details."""
        status = await self.client(run).status(job_id)
        return JobReport(status.state, status.details)

    async def cancel(self, run: Run, job_id: str) -> None:
        """Cancel and delete the job."""
        await self.client(run).delete(job_id)

    async def evaluation(self, run: Run) -> str:
        """The Evaluate Model CSV the job wrote."""
        data = await self.blobs.download(
            run.outputs.evaluation_path, max_bytes=MAX_EVALUATION_BYTES
        )
        return data.decode("utf-8", errors="replace")
