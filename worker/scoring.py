"""The scoring port's classic adapter: BES batch scoring jobs on predictive endpoints.

A scoring job scores the run's holdout blob with the model an endpoint of the tenant's
predictive web service serves (PROTOCOL.md §8): the live endpoint for the champion, the
staging endpoint for the challenger. Each endpoint has its own runtime base and key, read
from the management API once per process and endpoint.
"""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import structlog

from worker.azureml.bes import BesClient, BesJobRequest
from worker.azureml.classic import EndpointsClient
from worker.azureml.locations import BlobReference
from worker.azureml.retry import RetryPolicy
from worker.classic import start_once
from worker.errors import RunFailed
from worker.run.model import Run, ScoringJob
from worker.run.ports import BlobStorage, JobReport
from worker.settings import ScoringConfig

log = structlog.get_logger("retrainq.scoring")


class ClassicScoring:
    """BES scoring jobs on the endpoints of classic predictive web services."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: EndpointsClient,
        blobs: BlobStorage,
        config: ScoringConfig,
        sas_ttl: timedelta,
        policy: RetryPolicy | None = None,
        timeout_seconds: float = 20.0,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.blobs = blobs
        self.config = config
        self.sas_ttl = sas_ttl
        self.policy = policy
        self.timeout = timeout_seconds
        self._clients: dict[tuple[str, str], BesClient] = {}

    async def client(self, job: ScoringJob, *, fresh: bool = False) -> BesClient:
        """The BES client of the job's endpoint (its ``ApiLocation`` and primary key), read
        again when ``fresh`` (an endpoint deleted and created again has a new id and keys)."""
        key = (job.web_service_id, job.endpoint)
        client = None if fresh else self._clients.get(key)
        if client is None:
            endpoint = await self.endpoints.get_endpoint(job.web_service_id, job.endpoint)
            if endpoint is None:
                raise RunFailed(
                    f"endpoint {job.endpoint} of web service {job.web_service_id} is gone",
                    "scoring_endpoint_missing",
                )
            client = BesClient(
                self.session,
                endpoint.api_location,
                endpoint.primary_key,
                self.policy,
                timeout_seconds=self.timeout,
            )
            self._clients[key] = client
        return client

    def job_request(self, run: Run, job: ScoringJob) -> BesJobRequest:
        """The submit body: the holdout blob in, the scored CSV out."""
        if run.holdout is None:
            raise RunFailed("the run has no holdout to score", "no_holdout")
        location = self.blobs.read_sas(run.holdout.holdout_path, self.sas_ttl)
        source = BlobReference(
            base_location=location.base_location,
            sas_blob_token=location.sas_blob_token,
            relative_location=location.relative_location,
        )
        return BesJobRequest(
            inputs={self.config.input_name: source},
            outputs={self.config.output_name: self.blobs.reference(job.output_path)},
        )

    async def submit(self, run: Run, job: ScoringJob) -> str:
        """Create the scoring job (not started); never retried blindly."""
        client = await self.client(job, fresh=True)
        return await client.submit(self.job_request(run, job))

    async def start(self, run: Run, job: ScoringJob) -> None:
        """Start the recorded job; one that left ``NotStarted`` was started before."""
        await start_once(await self.client(job), job.job_id or "")

    async def status(self, run: Run, job: ScoringJob) -> JobReport:
        """The scoring job's state."""
        status = await (await self.client(job)).status(job.job_id or "")
        return JobReport(status.state, status.details)

    async def cancel(self, run: Run, job: ScoringJob) -> None:
        """Cancel and delete the scoring job."""
        await (await self.client(job)).delete(job.job_id or "")
