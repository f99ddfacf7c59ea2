"""Batch Execution Service (BES 2.0) client: submit, start, poll and delete training jobs."""

from __future__ import annotations

import json
import re
from enum import StrEnum

import aiohttp
from pydantic import Field, SecretStr, ValidationError, field_validator

from worker.azureml.errors import NotFoundError, invalid_response
from worker.azureml.http import JsonReply, request_json, segment
from worker.azureml.locations import BlobLocation, BlobReference, ProtocolModel
from worker.azureml.retry import RetryPolicy, with_retries

__all__ = [
    "BesClient",
    "BesJobRequest",
    "BlobLocation",
    "BlobReference",
    "JobState",
    "JobStatus",
    "parse_job_id",
    "parse_job_status",
]

API_VERSION = "2.0"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class JobState(StrEnum):
    """A BES job's ``StatusCode``; older clients number them 0-4 in this order."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    FINISHED = "Finished"

    @property
    def terminal(self) -> bool:
        """Whether the job will not change state any more."""
        return self in (JobState.FAILED, JobState.CANCELLED, JobState.FINISHED)


_BY_NUMBER = tuple(JobState)


class BesJobRequest(ProtocolModel):
    """A BES submit body: ``Inputs``, ``Outputs`` and ``GlobalParameters``, each optional."""

    inputs: dict[str, BlobReference] | None = None
    outputs: dict[str, BlobReference] | None = None
    global_parameters: dict[str, str] | None = None


class JobStatus(ProtocolModel):
    """A BES job's state, its output blobs (when ``Finished``) and failure details."""

    state: JobState = Field(alias="StatusCode")
    results: dict[str, BlobLocation] = Field(default_factory=dict)
    details: str | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _numbered_state(cls, value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and 0 <= value < len(_BY_NUMBER):
            return _BY_NUMBER[value]
        return value

    @field_validator("results", mode="before")
    @classmethod
    def _null_results(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("details", mode="before")
    @classmethod
    def _structured_details(cls, value: object) -> object:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)


def parse_job_status(payload: object) -> JobStatus:
    """Parse a BES status body (PROTOCOL §2.3); raises ``PermanentError`` when it is not one."""
    try:
        return JobStatus.model_validate(payload)
    except ValidationError as exc:
        raise invalid_response(exc) from exc


def parse_job_id(payload: object) -> str:
    """The job id a submit answers with (a JSON string)."""
    if isinstance(payload, str) and _JOB_ID.fullmatch(payload):
        return payload
    raise invalid_response("submit did not answer with a job id")


class BesClient:
    """BES of one endpoint (its ``ApiLocation`` runtime base), keyed by that endpoint's API key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: SecretStr,
        policy: RetryPolicy | None = None,
        *,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._policy = policy or RetryPolicy()
        self._timeout = timeout_seconds

    @property
    def base_url(self) -> str:
        """The runtime base this client calls."""
        return self._base_url

    def _url(self, job_id: str | None = None, action: str = "") -> str:
        path = "/jobs"
        if job_id is not None:
            path += f"/{segment(job_id, 'job id')}"
        if action:
            path += f"/{action}"
        return f"{self._base_url}{path}?api-version={API_VERSION}"

    async def _call(
        self, method: str, url: str, *, idempotent: bool, body: object = None
    ) -> JsonReply:
        return await with_retries(
            lambda: request_json(
                self._session,
                method,
                url,
                token=self._api_key,
                timeout_seconds=self._timeout,
                json_body=body,
            ),
            self._policy,
            idempotent=idempotent,
        )

    async def submit(self, request: BesJobRequest) -> str:
        """Create a job (not started) and return its id; one try only, never retried."""
        reply = await self._call("POST", self._url(), idempotent=False, body=request.to_payload())
        return parse_job_id(reply.body)

    async def start(self, job_id: str) -> None:
        """Start a submitted job; raises ``CannotStartJobError`` if it is not ``NotStarted``.

        Retried: a repeated start cannot start a second job, it is refused instead.
        """
        await self._call("POST", self._url(job_id, "start"), idempotent=True)

    async def status(self, job_id: str) -> JobStatus:
        """The job's current state; each call mints fresh read SAS tokens for its results."""
        reply = await self._call("GET", self._url(job_id), idempotent=True)
        return parse_job_status(reply.body)

    async def delete(self, job_id: str) -> None:
        """Cancel (if not ended) and delete the job; a job that is already gone is fine."""
        try:
            await self._call("DELETE", self._url(job_id), idempotent=True)
        except NotFoundError:
            return
