"""Example bodies of the OpenAPI document: one request and one answer per operation.

They are plain JSON values so that building the document never depends on constructing
records; ``tests/unit/test_openapi_examples.py`` validates each against its model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from producer import schemas
from worker.erase import Erasure
from worker.schemas import Run

TENANT_ID = "rental001"
RUN_ID = "5f0c2a7e9b1d4c3e8a6f1b2d3c4e5f60"
BATCH_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
CREATED = "2026-12-04T09:00:00Z"
FINISHED = "2026-12-04T09:02:41Z"
CLASSIC = {
    "kind": "classic",
    "web_service_id": "4c5166b2730b1d1649b6d0a9ca6a2d58",
    "resource_name": "Bike Rental [trained model]",
}
DECISION: dict[str, Any] = {
    "accepted": True,
    "reason": "0.912 is within 10% of the deployed model's 0.897",
    "metric": "Coefficient of Determination",
    "value": 0.912,
    "baseline": 0.897,
}
DEPLOYED: dict[str, Any] = {
    "run_id": RUN_ID,
    "seq": 3,
    "model_path": f"models/{TENANT_ID}/{RUN_ID}.ilearner",
    "metrics": {"Coefficient of Determination": 0.912},
    "deployed_at": FINISHED,
    "rollback_of": None,
}
RUN: dict[str, Any] = {
    "id": RUN_ID,
    "tenant_id": TENANT_ID,
    "seq": 3,
    "state": "succeeded",
    "lane": "interactive",
    "batch_id": None,
    "reason": "manual",
    "training_service": "default",
    "data_path": f"data/{TENANT_ID}/v2.csv",
    "data_version": 2,
    "outputs": {
        "model_path": f"models/{TENANT_ID}/{RUN_ID}.ilearner",
        "evaluation_path": f"evaluations/{TENANT_ID}/{RUN_ID}.csv",
    },
    "bes_job_id": "job-8c1d",
    "metrics": {"Coefficient of Determination": 0.912},
    "decision": DECISION,
    "created_at": CREATED,
    "deadline_at": "2026-12-04T15:00:00Z",
    "updated_at": FINISHED,
}
TENANT: dict[str, Any] = {
    "id": TENANT_ID,
    "display_name": "Rental shop 001",
    "target": CLASSIC,
    "training_service": "default",
    "data_path": f"data/{TENANT_ID}/v2.csv",
    "data_version": 2,
    "global_parameters": {},
    "gate": None,
    "schedule": "0 3 * * *",
    "created_at": CREATED,
    "endpoint_name": "rental001",
    "service_name": None,
    "deployed": DEPLOYED,
}
BATCH: dict[str, Any] = {
    "id": BATCH_ID,
    "created_at": CREATED,
    "reason": "bulk",
    "total": 40,
    "done": 25,
    "progress": 0.625,
    "counts": {"queued": 5, "training": 10, "succeeded": 24, "failed": 1},
    "throughput_per_second": 0.4,
    "eta_seconds": 37.5,
}
SCHEDULE: dict[str, Any] = {
    "name": "nightly",
    "cron": "0 2 * * *",
    "kind": "fleet",
    "tenant_id": None,
    "target_kind": "new",
    "next_fire_at": "2026-12-05T02:00:00Z",
}
RUN_BRIEF: dict[str, Any] = {
    "id": RUN_ID,
    "tenant_id": TENANT_ID,
    "seq": 3,
    "state": "failed",
    "reason": "bulk",
    "training_service": "default",
    "bes_job_id": "job-8c1d",
    "polls": 4,
    "created_at": CREATED,
    "updated_at": FINISHED,
    "phases": {"queued": CREATED, "training": "2026-12-04T09:00:05Z", "failed": FINISHED},
    "error": "BES job failed: the input blob does not exist",
    "error_code": "bes_Failed",
    "decision": None,
}

REQUESTS: dict[type[BaseModel], Any] = {
    schemas.TenantCreate: {
        "id": TENANT_ID,
        "display_name": "Rental shop 001",
        "target": CLASSIC,
        "data_path": f"data/{TENANT_ID}/v1.csv",
    },
    schemas.TenantPatch: {"display_name": "Rental shop 001 (north)", "schedule": None},
    schemas.RetrainRequest: {"reason": "new data"},
    schemas.BatchCreate: {"all": True, "target_kind": "classic", "reason": "monthly"},
    schemas.ScheduleBody: {"cron": "0 2 * * *", "target_kind": "new"},
}

RESPONSES: dict[type[BaseModel], Any] = {
    schemas.Health: {"status": "ok"},
    schemas.TenantCreated: {"tenant": TENANT, "api_key": "rtq_t_…", "run": RUN},
    schemas.TenantView: TENANT,
    schemas.TenantPage: {
        "items": [TENANT | {"model_state": "up_to_date", "latest_run_state": "succeeded"}],
        "total": 40,
        "matched": 12,
        "scanned": 40,
        "sort": "-metric",
        "offset": 0,
        "limit": 1,
        "next_offset": 1,
        "next_cursor": "WyItbWV0cmljIix0cnVlLDAuOTMsInJlbnRhbDAwMSJd",
    },
    schemas.Offboarded: {"tenant_id": TENANT_ID, "cancelled_run_id": None, "remote_removal": None},
    Erasure: {
        "tenant_id": TENANT_ID,
        "runs": 52,
        "archived_index": 310,
        "model_history": 5,
        "redis_keys": 4,
        "archive_parts": 41,
        "data_blobs": 12,
        "model_blobs": 724,
    },
    schemas.DataUploaded: {
        "tenant_id": TENANT_ID,
        "data_version": 2,
        "data_path": f"data/{TENANT_ID}/v2.csv",
        "size_bytes": 48213,
        "columns": ["season", "hr", "temp", "cnt"],
    },
    schemas.Models: {"current": DEPLOYED, "history": [DEPLOYED]},
    schemas.RunAccepted: {"run": RUN | {"state": "queued", "decision": None}, "coalesced": False},
    Run: RUN,
    schemas.RunView: RUN,
    schemas.RunPage: {
        "items": [{**RUN, "archived": False}],
        "offset": 0,
        "limit": 50,
        "next_offset": None,
        "next_cursor": None,
    },
    schemas.RunList: {
        "items": [RUN],
        "limit": 50,
        "more": False,
        "scanned": 12,
        "truncated": False,
    },
    schemas.BatchAccepted: {"batch_id": BATCH_ID, "total": 40, "coalesced": 0, "not_found": []},
    schemas.BatchStatus: BATCH,
    schemas.BatchPage: {"items": [BATCH], "total": 1},
    schemas.BatchRuns: {
        "batch_id": BATCH_ID,
        "items": [RUN_BRIEF],
        "total": 40,
        "offset": 0,
        "limit": 500,
        "next_offset": None,
    },
    schemas.ScheduleView: SCHEDULE,
    schemas.SchedulePage: {"items": [SCHEDULE]},
    schemas.Caller: {"admin": True, "tenant_id": None},
    schemas.FleetOverview: {
        "generated_at": FINISHED,
        "tenants": {
            "total": 40,
            "scanned": 40,
            "by_kind": {"classic": 30, "new": 10},
            "by_model_state": {"up_to_date": 38, "retraining": 2},
        },
        "services": [
            {
                "name": "default",
                "slots_in_use": 2,
                "max_running": 40,
                "waiting_interactive": 0,
                "waiting_bulk": 0,
                "throttled": False,
            }
        ],
        "backlog": {"ready": 0, "deferred": 2, "waiting_slot": 0},
        "hours": 1,
        "runs_by_hour": [{"start": "2026-12-04T09:00:00Z", "counts": {"succeeded": 38}}],
        "runs_by_state": {"succeeded": 38, "training": 2},
        "activity": {
            "bucket_seconds": 120,
            "buckets": [
                {"start": "2026-12-04T09:00:00Z", "counts": {"succeeded": 30}},
                {"start": "2026-12-04T09:02:00Z", "counts": {"succeeded": 8, "training": 2}},
            ],
        },
    },
}

# One problem document per status the API answers, as it words them.
PROBLEMS: dict[int, tuple[str, str, str]] = {
    401: ("Unauthorized", "missing, malformed or unknown API key", "unknown or revoked API key"),
    403: ("Forbidden", "a tenant key on an admin route", "this route needs an admin key"),
    404: ("Not Found", "no such resource, or one the key may not see", f"no tenant {TENANT_ID!r}"),
    409: (
        "Conflict",
        "the request conflicts with the record's state",
        f"tenant {TENANT_ID!r} has no training data yet",
    ),
    413: (
        "Content Too Large",
        "the body is larger than the API accepts",
        "the JSON body may hold at most 1048576 bytes",
    ),
    415: (
        "Unsupported Media Type",
        "the body's Content-Type is not accepted",
        "Content-Type 'text/xml': send application/json",
    ),
    422: (
        "Unprocessable Content",
        "a field, parameter or body is invalid (each is named)",
        "id: String should match pattern '^[a-z0-9][a-z0-9-]{0,62}$'",
    ),
    429: (
        "Too Many Requests",
        "the key used up its requests; wait for Retry-After",
        "more than 50 requests in 1 s with this key",
    ),
    503: (
        "Service Unavailable",
        "Redis or blob storage is unreachable; retry",
        "the record store (Redis) is unreachable; try again shortly",
    ),
}


def problem(status: int) -> dict[str, Any]:
    """An example problem document for ``status``."""
    title, _, detail = PROBLEMS[status]
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
