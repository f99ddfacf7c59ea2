"""Azure ML v2 command jobs over ARM: create-and-start by PUT under a chosen name, read, cancel.

The PUT of ``{workspace}/jobs/{name}`` both creates and starts a job. A repeated identical PUT
is an update that starts nothing, and a PUT that changes an immutable part is refused with a
``UserError`` naming "already exists" (shared/PROTOCOL-V2 §2.5), so a deterministic name per
run and a body built only from the stored run make submission safe to repeat. Cancel is a
long-running operation; its answer (200 or 202 with ``Location``) is accepted without waiting.
The list filtered by a tag key reads the states of many jobs in a few pages. Every call goes
through the principal's ARM budget (``worker/azureml_v2/arm.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.azureml.arm import TokenProvider
from worker.azureml.bes import JobState
from worker.azureml.errors import NotFoundError, PermanentError, invalid_response
from worker.azureml.http import JsonReply, segment
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.arm import V2Arm
from worker.azureml_v2.budget import ArmBudget

API_VERSION = "2025-12-01"
FAILURE_REASON = "azureml.failureReason"

# JobStatus values (PROTOCOL-V2 §2.4) that end a job; every other value, known or not, is
# taken as still running and polled again.
_TERMINAL = {
    "Completed": JobState.FINISHED,
    "Failed": JobState.FAILED,
    "Canceled": JobState.CANCELLED,
}
_EXISTS_DETAILS = frozenset({"Immutable", "JobPropertyImmutable"})
# A listing longer than this many pages is cut short (the rest is read by GET).
MAX_LIST_PAGES = 1000


def job_state(status: str | None) -> JobState:
    """The port's state of a v2 ``JobStatus``: Completed, Failed, Canceled end it, the rest runs."""
    return _TERMINAL.get(status or "", JobState.RUNNING)


def is_name_taken(error: PermanentError) -> bool:
    """Whether a refused PUT says a job of that name exists with other immutable parts."""
    if error.status not in (400, 409):
        return False
    return error.detail_code in _EXISTS_DETAILS or "already exists" in error.message


@dataclass(frozen=True)
class JobInfo:
    """A v2 job as GET or PUT answer it: its name, raw status, port state and failure text."""

    name: str
    status: str
    state: JobState
    failure: str | None = None
    created: bool = False


class _JobProperties(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str | None = None
    properties: dict[str, Any] | None = None


class _Job(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    properties: _JobProperties


def failure_text(value: object) -> str | None:
    """The failure reason the service left in ``properties`` (``{"code", "message"}``), as text."""
    if value is None:
        return None
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value[:500]
    if isinstance(parsed, dict):
        code, message = parsed.get("code"), parsed.get("message")
        text = ": ".join(str(part) for part in (code, message) if part)
        return text[:500] or None
    return str(parsed)[:500]


class _Page(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: list[dict[str, Any]]
    next_link: str | None = Field(default=None, alias="nextLink")


def parse_page(payload: object) -> tuple[list[JobInfo], str | None]:
    """The jobs of one list page and its ``nextLink``; items that are no job are skipped."""
    try:
        page = _Page.model_validate(payload)
    except ValidationError as exc:
        raise invalid_response(exc) from exc
    jobs = []
    for item in page.value:
        try:
            jobs.append(parse_job(item))
        except PermanentError:
            continue  # one odd item must not hide the others' states; it is read by GET
    return jobs, page.next_link or None


def parse_job(payload: object, *, created: bool = False) -> JobInfo:
    """A ``JobInfo`` from a JobBase body; raises ``PermanentError`` when it is not one."""
    try:
        job = _Job.model_validate(payload)
    except ValidationError as exc:
        raise invalid_response(exc) from exc
    status = job.properties.status or "Unknown"
    properties = job.properties.properties or {}
    return JobInfo(
        name=job.name,
        status=status,
        state=job_state(status),
        failure=failure_text(properties.get(FAILURE_REASON)),
        created=created,
    )


class JobsClient:
    """The jobs of one Azure ML v2 workspace, through ARM with the worker's bearer tokens."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        arm_url: str,
        workspace_path: str,
        token: TokenProvider,
        policy: RetryPolicy | None = None,
        *,
        api_version: str = API_VERSION,
        timeout_seconds: float = 20.0,
        budget: ArmBudget | None = None,
    ) -> None:
        self._arm = V2Arm(session, arm_url, token, policy, budget, timeout_seconds=timeout_seconds)
        self._base = f"{arm_url.rstrip('/')}{workspace_path}/jobs"
        self._api_version = api_version

    def url(self, name: str, action: str = "") -> str:
        """The ARM URL of job ``name`` (or one of its actions), with the api-version."""
        path = f"{self._base}/{segment(name, 'job name')}"
        if action:
            path += f"/{action}"
        return f"{path}?api-version={self._api_version}"

    async def _call(self, method: str, url: str, body: object = None) -> JsonReply:
        # A PUT with the same body under the same name starts nothing new, GET, list and
        # cancel change nothing twice: every call here may be repeated.
        return await self._arm.call(method, url, body)

    async def put(self, name: str, body: dict[str, Any]) -> JobInfo:
        """Create and start the job (201), or find it there with this body (200).

        A refused PUT raises ``PermanentError``; ``is_name_taken`` tells whether the job
        exists with a different body.
        """
        reply = await self._call("PUT", self.url(name), body)
        return parse_job(reply.body, created=reply.status == 201)

    async def get(self, name: str) -> JobInfo:
        """The job's current status (``NotFoundError`` when there is no job of that name)."""
        reply = await self._call("GET", self.url(name))
        return parse_job(reply.body)

    async def list_tagged(self, tag: str) -> list[JobInfo]:
        """Every job carrying the tag key ``tag``, all pages (``MAX_LIST_PAGES`` at most)."""
        url: str | None = f"{self._base}?api-version={self._api_version}&tag={quote(tag)}"
        jobs: list[JobInfo] = []
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            reply = await self._call("GET", self._arm.same_origin(url))
            page, url = parse_page(reply.body)
            jobs.extend(page)
        return jobs

    async def cancel(self, name: str) -> None:
        """Ask for the job to be cancelled; the operation goes on after the answer.

        A job that ended or is gone needs nothing.
        """
        try:
            job = await self.get(name)
        except NotFoundError:
            return
        if job.state.terminal:
            return
        try:
            await self._call("POST", self.url(name, "cancel"))
        except NotFoundError:
            return
