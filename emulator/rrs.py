"""Request-Response Service (PROTOCOL.md §4): ``execute`` in table and swagger formats.

Scores with the runtime's current model and appends ``Scored Labels`` (classification also
``Scored Probabilities``). Cells travel as strings. More concurrent calls than the endpoint's
``MaxConcurrentCalls`` answer 503 ``TooManyConcurrentRequests``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from emulator.bes import reply, runtime_of
from emulator.errors import ApiError, bad_argument, read_object, request_body_invalid
from emulator.scoring import require_columns
from emulator.state import STATE, Runtime
from emulator.training import Model, TrainingError, input_columns

THREAD_ROWS = 2000  # larger requests are scored off the event loop


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else str(value)


def _column_type(values: list[str]) -> str:
    for caster, name in ((int, "Int32"), (float, "Double")):
        try:
            for v in values:
                caster(v)
        except ValueError:
            continue
        return name
    return "String"


def parse_rows(body: dict[str, Any], swagger: bool) -> tuple[list[str], list[dict[str, str]]]:
    """Input columns and rows of an execute body (table or swagger format)."""
    inputs = body.get("Inputs")
    if not isinstance(inputs, dict) or "input1" not in inputs:
        raise request_body_invalid("Inputs.input1 is required.")
    table = inputs["input1"]
    if swagger:
        if not isinstance(table, list) or not all(isinstance(r, dict) for r in table):
            raise request_body_invalid("Inputs.input1 must be a list of objects (format=swagger).")
        columns: list[str] = []
        for row in table:
            columns.extend(str(c) for c in row if str(c) not in columns)
        return columns, [{str(k): _cell(v) for k, v in row.items()} for row in table]
    if not isinstance(table, dict):
        raise request_body_invalid("Inputs.input1 must have ColumnNames and Values.")
    names, values = table.get("ColumnNames"), table.get("Values")
    if not isinstance(names, list) or not isinstance(values, list):
        raise request_body_invalid("Inputs.input1 must have ColumnNames and Values lists.")
    columns = [str(n) for n in names]
    rows = []
    for row in values:
        if not isinstance(row, list) or len(row) != len(columns):
            raise request_body_invalid("Each row of Values must have one cell per column.")
        rows.append(dict(zip(columns, (_cell(v) for v in row), strict=True)))
    return columns, rows


async def _score(model: Model, rows: list[dict[str, str]]) -> list[list[str]]:
    try:
        if len(rows) > THREAD_ROWS:
            return await asyncio.to_thread(model.score, rows)
        return model.score(rows)
    except TrainingError as exc:
        raise ApiError(400, "ModuleExecutionError", f"Score Model failed: {exc}") from exc


def _model(runtime: Runtime) -> Model:
    if runtime.kind == "training":
        raise bad_argument("NoScoringOutput", "A training web service has no scoring output.")
    if runtime.model is None and runtime.unserved is not None:
        raise ApiError(400, "WebServicePackageError", runtime.unserved, "NoTrainedModel")
    if runtime.model is None:
        raise ApiError(503, "InitializingContainers", "The web service has no model yet.")
    return runtime.model


async def execute(request: web.Request) -> web.Response:
    """POST execute: score rows with the current model."""
    state = request.app[STATE]
    runtime = runtime_of(request)
    if runtime.rrs_in_flight >= runtime.max_concurrent_calls:
        raise ApiError(
            503,
            "ServiceUnavailable",
            "Too many concurrent requests for this endpoint.",
            "TooManyConcurrentRequests",
            headers={"Retry-After": "1"},
        )
    runtime.rrs_in_flight += 1
    try:
        await state.faults.before("rrs")
        state.rrs_calls += 1
        runtime.rrs_calls += 1
        model = _model(runtime)
        swagger = request.query.get("format") == "swagger"
        columns, rows = parse_rows(await read_object(request), swagger)
        try:
            require_columns(model, columns)
        except TrainingError as exc:
            raise ApiError(400, "ModuleExecutionError", str(exc)) from exc
        scored = await _score(model, rows)
    finally:
        runtime.rrs_in_flight -= 1
    out_columns = [*columns, *model.scored_columns()]
    if swagger:
        records = [
            {**row, **dict(zip(model.scored_columns(), cells, strict=True))}
            for row, cells in zip(rows, scored, strict=True)
        ]
        return reply(request, "rrs", web.json_response({"Results": {"output1": records}}))
    values = [[row[c] for c in columns] + cells for row, cells in zip(rows, scored, strict=True)]
    table: dict[str, Any] = {"ColumnNames": out_columns}
    if request.query.get("details", "").lower() == "true":
        scored_types = ["Double"] if model.kind == "regression" else ["String", "Double"]
        table["ColumnTypes"] = [
            _column_type([row[c] for row in rows]) for c in columns
        ] + scored_types
    table["Values"] = values
    body = {"Results": {"output1": {"type": "table", "value": table}}}
    return reply(request, "rrs", web.json_response(body))


def swagger_document(runtime: Runtime, title: str, base: str) -> dict[str, Any]:
    """A swagger.json of a runtime: its input columns with their types, and its global
    parameters (a training service's data-URL parameters; none on a predictive one)."""
    spec = runtime.spec
    numeric = set(input_columns(spec.numeric_features))
    columns = input_columns(spec.features)
    if runtime.kind == "training":
        columns = [*columns, spec.label]
        numeric.add(spec.label)
    properties = {
        c: {"type": "number", "format": "double"} if c in numeric else {"type": "string"}
        for c in columns
    }
    parameters = runtime.data_uri_parameters if runtime.kind == "training" else []
    return {
        "swagger": "2.0",
        "info": {"title": title, "version": "2.0"},
        "basePath": base,
        "paths": {
            "/execute": {"post": {"summary": "Score rows (RRS)", "parameters": []}},
            "/jobs": {"post": {"summary": "Submit a batch job (BES)", "parameters": []}},
        },
        "definitions": {
            "input1": {"type": "object", "properties": properties},
            "GlobalParameters": {
                "type": "object",
                "properties": {name: {"type": "string"} for name in parameters},
            },
        },
    }


async def swagger(request: web.Request) -> web.Response:
    """GET swagger.json of a new web service (a minimal description of its runtime API)."""
    state = request.app[STATE]
    match = request.match_info
    service = state.arm_by_service_id.get(match["service_id"].lower())
    if service is None or service.subscription_id.lower() != match["subscription_id"].lower():
        raise ApiError(404, "NotFound", "The web service was not found.")
    base = f"/subscriptions/{service.subscription_id}/services/{service.service_id}"
    title = service.properties.get("title", service.name)
    return web.json_response(swagger_document(service.runtime, title, base))


async def classic_swagger(request: web.Request) -> web.Response:
    """GET swagger.json of a classic endpoint (its key and ``api-version=2.0`` required)."""
    runtime = runtime_of(request)
    match = request.match_info
    base = f"/workspaces/{match['workspace_id']}/services/{match['endpoint_id']}"
    return web.json_response(swagger_document(runtime, runtime.label, base))


def add_routes(app: web.Application) -> None:
    """Register execute for classic endpoints and new services, and swagger.json."""
    app.router.add_post("/workspaces/{workspace_id}/services/{endpoint_id}/execute", execute)
    app.router.add_post("/subscriptions/{subscription_id}/services/{service_id}/execute", execute)
    app.router.add_get(
        "/subscriptions/{subscription_id}/services/{service_id}/swagger.json", swagger
    )
    app.router.add_get(
        "/workspaces/{workspace_id}/services/{endpoint_id}/swagger.json", classic_swagger
    )
