"""Metrics of a v2 job from the workspace's MLflow tracking (``runs/get``), as an evaluation table.

The tracking base comes from the workspace GET: ``properties.mlFlowTrackingUri`` is
``azureml://{host}/mlflow/v1.0/subscriptions/…/workspaces/{ws}``; the REST base is the same
path on ``{host}`` with ``/mlflow/v2.0``, over the scheme of the ARM base (https on Azure,
http against the emulator). The MLflow run id is the job name. ``runs/get`` gives the latest
value of each metric the training script logged; they become an evaluation table with the
same header-and-one-row shape as the evaluation output, so the gate reads both alike.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.azureml.errors import PermanentError, invalid_response
from worker.azureml.http import request_json
from worker.azureml.retry import with_retries
from worker.azureml_v2.arm import V2Arm

TRACKING_PREFIX = "/mlflow/v1.0/"
REST_PREFIX = "/mlflow/v2.0/"


class _Metric(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    value: float
    timestamp: int = 0
    step: int = 0


class _RunData(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metrics: list[_Metric] = Field(default_factory=list)


class _Run(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: _RunData = Field(default_factory=_RunData)


class _RunReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    run: _Run


def rest_base(tracking_uri: str, arm_url: str) -> str:
    """The MLflow REST base of a workspace's ``mlFlowTrackingUri``."""
    parts = urlsplit(tracking_uri)
    if parts.scheme != "azureml" or not parts.netloc or not parts.path.startswith(TRACKING_PREFIX):
        raise PermanentError(
            "the workspace's mlFlowTrackingUri is not azureml://{host}/mlflow/v1.0/...",
            code="InvalidTrackingUri",
        )
    scheme = urlsplit(arm_url).scheme or "https"
    path = REST_PREFIX + parts.path.removeprefix(TRACKING_PREFIX)
    return f"{scheme}://{parts.netloc}{path.rstrip('/')}"


def latest_metrics(payload: object) -> dict[str, float]:
    """The latest finite value of each metric in a ``runs/get`` answer."""
    try:
        run = _RunReply.model_validate(payload).run
    except ValidationError as exc:
        raise invalid_response(exc) from exc
    latest: dict[str, _Metric] = {}
    for metric in run.data.metrics:
        seen = latest.get(metric.key)
        if seen is None or (metric.timestamp, metric.step) >= (seen.timestamp, seen.step):
            latest[metric.key] = metric
    return {k: m.value for k, m in latest.items() if math.isfinite(m.value)}


def metrics_table(metrics: Mapping[str, float]) -> str:
    """Metrics as an evaluation table: a header row of names and one row of values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(metrics))
    writer.writerow([repr(value) for value in metrics.values()])
    return out.getvalue()


class MlflowClient:
    """Reads runs of one workspace's MLflow tracking with the worker's ARM token."""

    def __init__(self, arm: V2Arm, workspace_url: str, api_version: str) -> None:
        self._arm = arm
        self._workspace_url = f"{workspace_url}?api-version={api_version}"
        self._base: str | None = None

    async def base(self) -> str:
        """The tracking REST base (read from the workspace once)."""
        if self._base is None:
            reply = await self._arm.call("GET", self._workspace_url)
            body = reply.body
            props = body.get("properties") if isinstance(body, dict) else None
            uri = props.get("mlFlowTrackingUri") if isinstance(props, dict) else None
            if not isinstance(uri, str):
                raise invalid_response("workspace has no properties.mlFlowTrackingUri")
            self._base = rest_base(uri, self._arm.arm_url)
        return self._base

    async def metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each metric logged by run ``run_id`` (empty: none logged)."""
        url = f"{await self.base()}/api/2.0/mlflow/runs/get?run_id={quote(run_id)}"
        arm = self._arm

        async def once() -> object:
            # The tracking surface is the workspace's data plane: ARM's buckets do not apply.
            reply = await request_json(
                arm.session,
                "GET",
                url,
                token=await arm.token.token(),
                timeout_seconds=arm.timeout,
            )
            return reply.body

        return latest_metrics(await with_retries(once, arm.policy, idempotent=True))
