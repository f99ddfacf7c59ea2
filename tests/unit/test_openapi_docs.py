"""The OpenAPI document: examples that validate, tags, summaries and real error responses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from producer.api import examples
from producer.api.openapi import build_openapi, error_statuses, tag_of
from producer.schemas import ProblemDetails

DOC = build_openapi()
OPERATIONS = [
    (method, path, operation)
    for path, operations in DOC["paths"].items()
    for method, operation in operations.items()
]


@pytest.mark.parametrize(
    ("model", "example"),
    [*examples.REQUESTS.items(), *examples.RESPONSES.items()],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_every_example_is_a_valid_body(model: type[BaseModel], example: Any) -> None:
    """Each example parses as the model it illustrates."""
    model.model_validate(example)


@pytest.mark.parametrize("status", sorted(examples.PROBLEMS))
def test_every_problem_example_is_a_problem_document(status: int) -> None:
    """Each error example is a problem document of its own status."""
    assert ProblemDetails.model_validate(examples.problem(status)).status == status


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=lambda v: str(v)[:40])
def test_every_operation_is_tagged_summarised_and_exemplified(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    """A tag the document declares, a summary, an id, and examples for bodies sent and got."""
    declared = {tag["name"] for tag in DOC["tags"]}
    assert operation["tags"][0] in declared
    assert operation["summary"]
    assert operation["operationId"]
    body = operation.get("requestBody", {}).get("content", {})
    assert all("example" in media for media in body.values())
    for status, reply in operation["responses"].items():
        for media in reply.get("content", {}).values():
            assert "example" in media or status == "default", (method, path, status)


def test_operation_ids_are_unique() -> None:
    """No two operations share an id (code generators need them)."""
    ids = [operation["operationId"] for _, _, operation in OPERATIONS]
    assert len(ids) == len(set(ids))


def test_errors_are_listed_with_their_statuses() -> None:
    """An admin write with a body lists every problem it can answer as problem+json."""
    operation = DOC["paths"]["/v1/tenants"]["post"]
    assert error_statuses("post", "/v1/tenants", operation) == [
        401, 403, 409, 413, 415, 422, 429, 503
    ]  # fmt: skip
    reply = operation["responses"]["415"]["content"]["application/problem+json"]
    assert reply["example"]["status"] == 415
    assert DOC["paths"]["/healthz"]["get"]["responses"].keys() == {"200", "default"}
    assert "503" in DOC["paths"]["/readyz"]["get"]["responses"]
    schedule_put = DOC["paths"]["/v1/schedules/{name}"]["put"]["responses"]
    assert "404" not in schedule_put
    assert "409" not in schedule_put
    assert "422" in schedule_put
    assert "409" in DOC["paths"]["/v1/runs/{run_id}"]["delete"]["responses"]


@pytest.mark.parametrize(
    ("path", "tag"),
    [
        ("/v1/tenants/{tenant_id}/runs", "runs"),
        ("/v1/tenants/{tenant_id}/data", "data"),
        ("/v1/tenants/{tenant_id}", "tenants"),
        ("/v1/batches/{batch_id}/runs", "batches"),
        ("/readyz", "health"),
    ],
)
def test_tags_follow_the_path(path: str, tag: str) -> None:
    """Paths are tagged by what they act on."""
    assert tag_of(path) == tag
