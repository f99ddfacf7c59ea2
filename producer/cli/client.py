"""Typed HTTP client of the retrainq API (used by the CLI, benchmarks and scripts)."""

from __future__ import annotations

import asyncio
from typing import IO, Any, TypeVar

import aiohttp
from pydantic import BaseModel, SecretStr

from producer.schemas import (
    BatchAccepted,
    BatchCreate,
    BatchPage,
    BatchRuns,
    BatchStatus,
    DataUploaded,
    Models,
    Offboarded,
    RetrainRequest,
    RunAccepted,
    RunList,
    RunPage,
    RunView,
    ScheduleBody,
    SchedulePage,
    ScheduleView,
    TenantCreate,
    TenantCreated,
    TenantPage,
    TenantPatch,
    TenantView,
)
from worker.erase import Erasure
from worker.schemas import Run

M = TypeVar("M", bound=BaseModel)
RATE_LIMIT_RETRIES = 5


class ApiError(Exception):
    """The API answered with an error (a problem document) or could not be reached."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}" if status else f"{title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


class ApiClient:
    """One method per API route; answers are the API's pydantic models."""

    def __init__(self, base_url: str, api_key: SecretStr, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._session = session

    async def _call(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        data: IO[bytes] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        include: set[str] | None = None,
    ) -> M:
        sent = {"Authorization": f"Bearer {self._api_key.get_secret_value()}", **(headers or {})}
        kwargs: dict[str, Any] = {"headers": sent, "params": params}
        if body is not None:
            kwargs["data"] = body.model_dump_json(include=include).encode()
            sent["Content-Type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
            sent["Content-Type"] = "text/csv"
        url = f"{self.base_url}{path}"
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                async with self._session.request(method, url, **kwargs) as response:
                    raw = await response.read()
                    wait = _retry_after(response.headers.get("Retry-After"))
                    if response.status == 429 and attempt < RATE_LIMIT_RETRIES:
                        # Rate-limited requests were not executed: waiting and resending is safe.
                        if data is not None and data.seekable():
                            data.seek(0)
                        await asyncio.sleep(wait)
                        continue
                    if response.status >= 400:
                        raise _problem(response.status, response.reason or "", raw)
                    return model.model_validate_json(raw or b"{}")
            except aiohttp.ClientError as exc:
                raise ApiError(0, "cannot reach the API", f"{self.base_url} ({exc})") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def create_tenant(
        self, tenant: TenantCreate, include: set[str] | None = None
    ) -> TenantCreated:
        """Onboard a tenant (admin key); ``include``: only these fields are sent."""
        return await self._call(TenantCreated, "POST", "/v1/tenants", body=tenant, include=include)

    async def list_tenants(
        self,
        limit: int = 100,
        offset: int = 0,
        kind: str | None = None,
        *,
        state: str | None = None,
        prefix: str | None = None,
        sort: str | None = None,
        cursor: str | None = None,
    ) -> TenantPage:
        """One page of tenants (admin key), filtered by kind, model state and id prefix."""
        chosen = {"kind": kind, "state": state, "prefix": prefix, "sort": sort, "cursor": cursor}
        params = {"limit": str(limit), "offset": str(offset)}
        params |= {name: value for name, value in chosen.items() if value}
        return await self._call(TenantPage, "GET", "/v1/tenants", params=params)

    async def get_tenant(self, tenant_id: str) -> TenantView:
        """One tenant."""
        return await self._call(TenantView, "GET", f"/v1/tenants/{tenant_id}")

    async def patch_tenant(self, tenant_id: str, patch: TenantPatch) -> TenantView:
        """Change the fields set in ``patch``."""
        # Only the fields set: left out means unchanged, an explicit null clears a field.
        path = f"/v1/tenants/{tenant_id}"
        fields = set(patch.model_fields_set)
        return await self._call(TenantView, "PATCH", path, body=patch, include=fields)

    async def offboard(self, tenant_id: str, remove_remote: bool = False) -> Offboarded:
        """Offboard a tenant (admin key)."""
        params = {"remove_remote": "true"} if remove_remote else None
        return await self._call(Offboarded, "DELETE", f"/v1/tenants/{tenant_id}", params=params)

    async def erase(self, tenant_id: str) -> Erasure:
        """Erase an offboarded tenant entirely (admin key): what was removed."""
        return await self._call(Erasure, "POST", f"/v1/tenants/{tenant_id}/erase")

    async def upload(self, tenant_id: str, stream: IO[bytes]) -> DataUploaded:
        """Stream a training CSV to the tenant's next data version."""
        return await self._call(DataUploaded, "PUT", f"/v1/tenants/{tenant_id}/data", data=stream)

    async def retrain(
        self, tenant_id: str, reason: str = "manual", idempotency_key: str | None = None
    ) -> RunAccepted:
        """Ask for a retrain; the answer is the new or the active run."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call(
            RunAccepted,
            "POST",
            f"/v1/tenants/{tenant_id}/retrains",
            body=RetrainRequest(reason=reason),
            headers=headers,
        )

    async def tenant_runs(self, tenant_id: str, limit: int = 50) -> RunPage:
        """A tenant's runs, newest first."""
        params = {"limit": str(limit)}
        return await self._call(RunPage, "GET", f"/v1/tenants/{tenant_id}/runs", params=params)

    async def models(self, tenant_id: str) -> Models:
        """A tenant's current model and deployment history."""
        return await self._call(Models, "GET", f"/v1/tenants/{tenant_id}/models")

    async def rollback(self, tenant_id: str) -> RunAccepted:
        """Redeploy the tenant's previous model."""
        return await self._call(RunAccepted, "POST", f"/v1/tenants/{tenant_id}/rollback")

    async def create_batch(self, batch: BatchCreate) -> BatchAccepted:
        """Start a bulk retrain (admin key)."""
        return await self._call(BatchAccepted, "POST", "/v1/batches", body=batch)

    async def retry_failed(self, batch_id: str, include_cancelled: bool) -> BatchAccepted:
        """A new bulk retrain of a batch's failed (and cancelled) tenants (admin key)."""
        params = {"include_cancelled": "true"} if include_cancelled else None
        path = f"/v1/batches/{batch_id}/retry-failed"
        return await self._call(BatchAccepted, "POST", path, params=params)

    async def batch(self, batch_id: str) -> BatchStatus:
        """Progress of a bulk retrain (admin key)."""
        return await self._call(BatchStatus, "GET", f"/v1/batches/{batch_id}")

    async def batches(self, limit: int = 20) -> BatchPage:
        """Recent bulk retrains, newest first (admin key)."""
        return await self._call(BatchPage, "GET", "/v1/batches", params={"limit": str(limit)})

    async def batch_runs(self, batch_id: str, offset: int = 0, limit: int = 2000) -> BatchRuns:
        """A page of a batch's runs in creation order (admin key)."""
        params = {"offset": str(offset), "limit": str(limit)}
        return await self._call(BatchRuns, "GET", f"/v1/batches/{batch_id}/runs", params=params)

    async def runs(self, filters: dict[str, str]) -> RunList:
        """Runs by ``state``, ``tenant``, ``batch``, ``since`` and ``limit``, newest first."""
        return await self._call(RunList, "GET", "/v1/runs", params=filters)

    async def schedules(self) -> SchedulePage:
        """Every schedule, soonest first (admin key)."""
        return await self._call(SchedulePage, "GET", "/v1/schedules")

    async def put_schedule(self, name: str, schedule: ScheduleBody) -> ScheduleView:
        """Create or replace a fleet-wide schedule (admin key)."""
        return await self._call(ScheduleView, "PUT", f"/v1/schedules/{name}", body=schedule)

    async def delete_schedule(self, name: str) -> None:
        """Stop a fleet-wide schedule (admin key)."""
        await self._call(_Empty, "DELETE", f"/v1/schedules/{name}")

    async def run(self, run_id: str) -> Run:
        """One run (a ``RunView`` with ``archived`` set when it was read from the archive)."""
        return await self._call(RunView, "GET", f"/v1/runs/{run_id}")

    async def cancel(self, run_id: str) -> Run:
        """Ask a run to stop."""
        return await self._call(Run, "DELETE", f"/v1/runs/{run_id}")


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (1 s when absent, at most 10 s)."""
    try:
        return min(10.0, max(0.05, float(value))) if value else 1.0
    except ValueError:
        return 1.0


def _problem(status: int, reason: str, raw: bytes) -> ApiError:
    try:
        problem = _Problem.model_validate_json(raw)
    except ValueError:
        return ApiError(status, reason, raw[:200].decode(errors="replace") or "no detail")
    return ApiError(status, problem.title, problem.detail)


class _Empty(BaseModel):
    """An answer without a body (204)."""


class _Problem(BaseModel):
    title: str
    detail: str
