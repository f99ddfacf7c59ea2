"""The OpenAPI 3.1 document of the API, built from the pydantic models of ``schemas``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from producer.api import examples
from producer.schemas import (
    RUN_ID_PATTERN,
    BatchAccepted,
    BatchCreate,
    BatchPage,
    BatchRuns,
    BatchStatus,
    Caller,
    DataUploaded,
    FleetOverview,
    Health,
    Models,
    Offboarded,
    ProblemDetails,
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
from worker.schemas import TARGET_KINDS, TENANT_ID_PATTERN, Run

Mode = Literal["validation", "serialization"]
JSON = "application/json"
_REF = "#/components/schemas/{model}"

_INPUTS: list[type[BaseModel]] = [
    TenantCreate,
    TenantPatch,
    RetrainRequest,
    BatchCreate,
    ScheduleBody,
]
_OUTPUTS: list[type[BaseModel]] = [
    TenantCreated,
    TenantPage,
    TenantView,
    Offboarded,
    Erasure,
    DataUploaded,
    Models,
    RunAccepted,
    Run,
    RunList,
    RunPage,
    RunView,
    BatchAccepted,
    BatchStatus,
    ProblemDetails,
    Health,
    ScheduleView,
    SchedulePage,
    Caller,
    FleetOverview,
    BatchPage,
    BatchRuns,
]


def _path_param(name: str, pattern: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern, "maxLength": 63},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


TENANT = _path_param("tenant_id", TENANT_ID_PATTERN)
RUN = _path_param("run_id", RUN_ID_PATTERN)
BATCH = _path_param("batch_id", RUN_ID_PATTERN)
SCHEDULE = _path_param("name", r"^[a-z0-9][a-z0-9-]{0,62}$")
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size")
RUN_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size")
OFFSET = _query("offset", {"type": "integer", "minimum": 0}, "position to start from")
KIND = _query("kind", {"type": "string", "enum": list(TARGET_KINDS)}, "only this target kind")
TENANT_FILTERS = [
    _query(
        "state",
        {"type": "string", "pattern": r"^[a-z_]+(,[a-z_]+)*$"},
        "comma-separated model states: retraining, up_to_date, kept_previous, no_model",
    ),
    _query("prefix", {"type": "string", "pattern": r"^[a-z0-9-]{0,63}$"}, "only ids starting so"),
    _query(
        "sort",
        {
            "type": "string",
            "enum": ["created", "-created", "id", "-id", "state", "-state", "metric", "-metric"],
        },
        "order (default created; '-' for descending; metric is the deployed model's gate "
        "metric, tenants without one last)",
    ),
    _query(
        "cursor",
        {"type": "string", "maxLength": 400},
        "next_cursor of the previous page (same sort); takes precedence over offset",
    ),
]
RUN_OFFSET = _query(
    "offset", {"type": "integer", "minimum": 0, "maximum": 1000}, "position to start from"
)
RUN_CURSOR = _query(
    "cursor",
    {"type": "string", "maxLength": 200},
    "next_cursor of the previous page; takes precedence over offset (at most 1000)",
)
REMOTE = _query(
    "remove_remote", {"type": "boolean"}, "also remove the tenant's endpoint or web service"
)
RUN_FILTERS = [
    _query(
        "state",
        {"type": "string", "pattern": r"^[a-z_]+(,[a-z_]+)*$"},
        "comma-separated run states (e.g. failed,cancelled)",
    ),
    _query("tenant", {"type": "string", "pattern": TENANT_ID_PATTERN}, "only this tenant's runs"),
    _query("batch", {"type": "string", "pattern": RUN_ID_PATTERN}, "only this batch's runs"),
    _query(
        "since",
        {"type": "string"},
        "runs created since: a duration before now (30m, 2h, 7d) or an ISO 8601 time",
    ),
    LIMIT,
]
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"},
    "description": "repeating a request with the same key returns the same run",
}


def _require_discriminators(schemas: dict[str, Any]) -> None:
    """Mark each discriminator property required in the schemas it selects.

    pydantic gives ``kind`` a default, so its schema leaves it optional, yet a tagged union
    cannot be parsed without the tag: a body without ``kind`` is a 422, and the document
    says so.
    """
    pending = list(schemas.values())
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        pending.extend(node.values())
        discriminator = node.get("discriminator")
        if not isinstance(discriminator, dict):
            continue
        tag = discriminator["propertyName"]
        for ref in discriminator.get("mapping", {}).values():
            selected = schemas[ref.rsplit("/", 1)[-1]]
            if tag not in selected.setdefault("required", []):
                selected["required"].insert(0, tag)


class _Builder:
    def __init__(self) -> None:
        models: list[tuple[type[BaseModel], Mode]] = [(m, "validation") for m in _INPUTS]
        models += [(m, "serialization") for m in _OUTPUTS]
        self.refs, defs = models_json_schema(models, ref_template=_REF)
        self.schemas: dict[str, Any] = defs.get("$defs", {})
        _require_discriminators(self.schemas)

    def ref(self, model: type[BaseModel], mode: Mode = "serialization") -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def op(
        self,
        summary: str,
        responses: dict[int, type[BaseModel] | None],
        *,
        body: type[BaseModel] | None = None,
        body_required: bool = True,
        params: list[dict[str, Any]] | None = None,
        public: bool = False,
        links: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        problem = {"application/problem+json": {"schema": self.ref(ProblemDetails)}}
        out: dict[str, Any] = {
            "summary": summary,
            "parameters": params or [],
            "responses": {
                str(status): (
                    {"description": "no content"}
                    if model is None
                    else {
                        "description": model.__doc__ or summary,
                        "content": {JSON: {"schema": self.ref(model)}},
                    }
                )
                for status, model in responses.items()
            }
            | {"default": {"description": "an error (problem details)", "content": problem}},
        }
        if body is not None:
            out["requestBody"] = {
                "required": body_required,
                "content": {JSON: {"schema": self.ref(body, "validation")}},
            }
        if public:
            out["security"] = []
        if links:
            success = next(str(status) for status in responses)
            out["responses"][success]["links"] = links
        return out


def _link(path: str, method: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to ``method path`` filling its parameters from the response body."""
    pointer = "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method
    values = {name: f"$response.body#/{field}" for name, field in parameters.items()}
    return {"operationRef": pointer, "parameters": values}


_TENANT_PATH = "/v1/tenants/{tenant_id}"
_RUN_PATH = "/v1/runs/{run_id}"
_SCHEDULE_PATH = "/v1/schedules/{name}"


def _tenant_links(field: str) -> dict[str, dict[str, Any]]:
    """Links from a response naming a tenant (at ``field``) to every route of that tenant."""
    return {
        "GetTenant": _link(_TENANT_PATH, "get", tenant_id=field),
        "PatchTenant": _link(_TENANT_PATH, "patch", tenant_id=field),
        "UploadData": _link(f"{_TENANT_PATH}/data", "put", tenant_id=field),
        "Retrain": _link(f"{_TENANT_PATH}/retrains", "post", tenant_id=field),
        "ListRuns": _link(f"{_TENANT_PATH}/runs", "get", tenant_id=field),
        "GetModels": _link(f"{_TENANT_PATH}/models", "get", tenant_id=field),
        "Rollback": _link(f"{_TENANT_PATH}/rollback", "post", tenant_id=field),
        "OffboardTenant": _link(_TENANT_PATH, "delete", tenant_id=field),
    }


def _run_links(field: str) -> dict[str, dict[str, Any]]:
    """Links from a response naming a run (at ``field``) to showing and cancelling it."""
    return {
        "GetRun": _link(_RUN_PATH, "get", run_id=field),
        "CancelRun": _link(_RUN_PATH, "delete", run_id=field),
    }


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json``."""
    b = _Builder()
    upload_body = {
        "required": True,
        "description": "The CSV, labelled text/csv (text/plain, application/csv and "
        "application/octet-stream are read as CSV too; other types answer 415).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    upload = b.op(
        "Upload training data (CSV)",
        {200: DataUploaded},
        params=[TENANT],
        links={"Retrain": _link(f"{_TENANT_PATH}/retrains", "post", tenant_id="tenant_id")},
    )
    upload["requestBody"] = upload_body
    paths: dict[str, Any] = {
        "/healthz": {"get": b.op("Liveness", {200: Health}, public=True)},
        "/readyz": {"get": b.op("Readiness (Redis reachable)", {200: Health}, public=True)},
        "/v1/tenants": {
            "post": b.op(
                "Onboard a tenant (admin)",
                {201: TenantCreated},
                body=TenantCreate,
                links=_tenant_links("tenant/id"),
            ),
            "get": b.op(
                "List tenants (admin)",
                {200: TenantPage},
                params=[LIMIT, OFFSET, KIND, *TENANT_FILTERS],
            ),
        },
        "/v1/tenants/{tenant_id}": {
            "get": b.op("Show a tenant", {200: TenantView}, params=[TENANT]),
            "patch": b.op("Change a tenant", {200: TenantView}, body=TenantPatch, params=[TENANT]),
            "delete": b.op(
                "Offboard a tenant (admin)",
                {200: Offboarded},
                params=[TENANT, REMOTE],
                links={"GetTenant": _link(_TENANT_PATH, "get", tenant_id="tenant_id")},
            ),
        },
        "/v1/tenants/{tenant_id}/erase": {
            "post": b.op(
                "Erase an offboarded tenant: Redis, archive, blobs (admin)",
                {200: Erasure},
                params=[TENANT],
            )
        },
        "/v1/tenants/{tenant_id}/data": {"put": upload},
        "/v1/tenants/{tenant_id}/retrains": {
            "post": b.op(
                "Retrain a tenant",
                {202: RunAccepted},
                body=RetrainRequest,
                body_required=False,
                params=[TENANT, IDEMPOTENCY],
                links=_run_links("run/id"),
            )
        },
        "/v1/tenants/{tenant_id}/runs": {
            "get": b.op(
                "A tenant's runs",
                {200: RunPage},
                params=[TENANT, RUN_LIMIT, RUN_OFFSET, RUN_CURSOR],
            )
        },
        "/v1/tenants/{tenant_id}/models": {
            "get": b.op("A tenant's models", {200: Models}, params=[TENANT])
        },
        "/v1/tenants/{tenant_id}/rollback": {
            "post": b.op(
                "Redeploy the previous model",
                {202: RunAccepted},
                params=[TENANT],
                links=_run_links("run/id"),
            )
        },
        "/v1/runs": {
            "get": b.op(
                "List runs by state, tenant, batch, age", {200: RunList}, params=RUN_FILTERS
            )
        },
        "/v1/runs/{run_id}": {
            "get": b.op("Show a run", {200: RunView}, params=[RUN]),
            "delete": b.op("Cancel a run", {202: Run}, params=[RUN], links=_run_links("id")),
        },
        "/v1/batches": {
            "post": b.op(
                "Bulk retrain (admin)",
                {202: BatchAccepted},
                body=BatchCreate,
                links={"GetBatch": _link("/v1/batches/{batch_id}", "get", batch_id="batch_id")},
            )
        },
        "/v1/batches/{batch_id}": {
            "get": b.op("Progress of a bulk retrain (admin)", {200: BatchStatus}, params=[BATCH])
        },
        "/v1/schedules": {"get": b.op("List schedules (admin)", {200: SchedulePage})},
        "/v1/schedules/{name}": {
            "get": b.op("Show a schedule (admin)", {200: ScheduleView}, params=[SCHEDULE]),
            "put": b.op(
                "Create or replace a fleet-wide schedule (admin)",
                {200: ScheduleView},
                body=ScheduleBody,
                params=[SCHEDULE],
                links={
                    "GetSchedule": _link(_SCHEDULE_PATH, "get", name="name"),
                    "DeleteSchedule": _link(_SCHEDULE_PATH, "delete", name="name"),
                },
            ),
            "delete": b.op("Delete a fleet-wide schedule (admin)", {204: None}, params=[SCHEDULE]),
        },
    }
    paths.update(_dashboard_paths(b, paths))
    for path, operations in paths.items():
        for method, operation in operations.items():
            _describe(path, method, operation, b.ref(ProblemDetails))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "retrainq",
            "version": "1",
            "description": DESCRIPTION,
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": b.schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


HOURS = _query("hours", {"type": "integer", "minimum": 1, "maximum": 168}, "hours to look back")
BATCH_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "batches")
RETRY_CANCELLED = _query(
    "include_cancelled", {"type": "boolean"}, "also retrain the tenants whose runs were cancelled"
)
BATCH_RUN_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 2000}, "page size")


def _dashboard_paths(b: _Builder, paths: dict[str, Any]) -> dict[str, Any]:
    """The routes the dashboard calls (``producer/api/routes_fleet.py``)."""
    return {
        "/v1/me": {"get": b.op("Who this API key belongs to", {200: Caller})},
        "/v1/fleet": {"get": b.op("Fleet overview (admin)", {200: FleetOverview}, params=[HOURS])},
        "/v1/batches": {
            **paths["/v1/batches"],
            "get": b.op("Recent bulk retrains (admin)", {200: BatchPage}, params=[BATCH_LIMIT]),
        },
        "/v1/batches/{batch_id}/retry-failed": {
            "post": b.op(
                "Retrain a batch's failed tenants as a new batch (admin)",
                {202: BatchAccepted},
                params=[BATCH, RETRY_CANCELLED],
                links={"GetBatch": _link("/v1/batches/{batch_id}", "get", batch_id="batch_id")},
            )
        },
        "/v1/batches/{batch_id}/runs": {
            "get": b.op(
                "Runs of a bulk retrain with their phases (admin)",
                {200: BatchRuns},
                params=[BATCH, BATCH_RUN_LIMIT, OFFSET],
            )
        },
    }


DESCRIPTION = """Durable per-tenant model retraining: onboard, upload, retrain, watch.

Send `Authorization: Bearer <key>`: an admin key sees every tenant and the fleet routes; a
tenant's key (issued once at onboarding) sees only that tenant, and other tenants' resources
answer 404. Every error is an `application/problem+json` document; each operation lists the
statuses it answers. The `retrainq` CLI calls these routes (see `retrainq --help`)."""

TAGS = {
    "tenants": "Onboard, show, change and offboard tenants; their deployed models.",
    "data": "Training data uploads (CSV), each a new data version.",
    "runs": "Retrains of one tenant: start, list, show, cancel, roll back.",
    "batches": "Bulk retrains: start, progress, the runs of a batch.",
    "schedules": "Fleet-wide recurring retrains.",
    "fleet": "The dashboard's read-only views and who a key belongs to.",
    "health": "Liveness and readiness probes (public).",
}
# Writes that never answer 409: schedules replace or remove one record without a version, and a
# bulk retrain coalesces tenants that already run instead of refusing them.
NO_CONFLICT = frozenset(
    {
        ("put", "/v1/schedules/{name}"),
        ("delete", "/v1/schedules/{name}"),
        ("post", "/v1/batches"),
    }
)
_TAG_OF_SEGMENT = {
    "data": "data",
    "retrains": "runs",
    "runs": "runs",
    "rollback": "runs",
    "models": "tenants",
    "tenants": "tenants",
    "batches": "batches",
    "schedules": "schedules",
    "me": "fleet",
    "fleet": "fleet",
}


def tag_of(path: str) -> str:
    """The tag of a path: by its last named segment (``/v1/tenants/{id}/runs`` is ``runs``),
    except that everything under ``/v1/batches`` is ``batches``."""
    named = [part for part in path.split("/") if part and not part.startswith("{")]
    if named[1:2] == ["batches"]:
        return "batches"
    for segment in reversed(named):
        if segment in _TAG_OF_SEGMENT:
            return _TAG_OF_SEGMENT[segment]
    return "health"


def operation_id(method: str, path: str) -> str:
    """``get_v1_tenants_tenant_id_runs`` from ``GET /v1/tenants/{tenant_id}/runs``."""
    parts = [part.strip("{}").replace("-", "_").replace(".", "_") for part in path.split("/")]
    return "_".join([method, *(part for part in parts if part)])


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    """The problem statuses an operation answers, from what it takes and who may call it."""
    statuses: set[int] = set()
    params = operation.get("parameters", [])
    public = operation.get("security") == []
    if not public:
        statuses |= {401, 429, 503}
    if operation["summary"] == "Readiness (Redis reachable)":
        statuses.add(503)
    if "(admin)" in operation["summary"]:
        statuses.add(403)
    path_params = [param["name"] for param in params if param["in"] == "path"]
    if "name" in path_params:
        statuses.add(422)  # schedule names outside the pattern are refused, not unknown
        if method != "put":  # a PUT creates the schedule its path names
            statuses.add(404)
    elif path_params:
        statuses.add(404)
    if any(param["in"] in ("query", "header") for param in params):
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {413, 415, 422}
    if method != "get" and not public and (method, path) not in NO_CONFLICT:
        statuses.add(409)  # a record changed under the write, or the state forbids it
    return sorted(statuses)


def _example_of(content: dict[str, Any], table: dict[type[BaseModel], Any]) -> None:
    """Put the example of the schema's model (by its ref) beside the schema."""
    ref = content.get("schema", {}).get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    for model, example in table.items():
        if model.__name__ == name:
            content["example"] = example


def _describe(path: str, method: str, operation: dict[str, Any], problem: dict[str, Any]) -> None:
    """Add the tag, operation id, examples and documented error responses of an operation."""
    operation["tags"] = [tag_of(path)]
    operation["operationId"] = operation_id(method, path)
    body = operation.get("requestBody", {}).get("content", {}).get(JSON)
    if body is not None:
        _example_of(body, examples.REQUESTS)
    elif "requestBody" in operation:
        operation["requestBody"]["content"]["text/csv"]["example"] = (
            "season,hr,temp,cnt\n1,8,0.24,16\n"
        )
    responses = operation["responses"]
    for reply in responses.values():
        if JSON in reply.get("content", {}):
            _example_of(reply["content"][JSON], examples.RESPONSES)
    for status in error_statuses(method, path, operation):
        _, meaning, _ = examples.PROBLEMS[status]
        responses[str(status)] = {
            "description": meaning,
            "content": {
                "application/problem+json": {"schema": problem, "example": examples.problem(status)}
            },
        }
    responses["default"]["description"] = "an unexpected error (problem details)"
