"""Request-Response Service (RRS) client: score rows against an endpoint or service."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from pydantic import Field, SecretStr, ValidationError

from worker.azureml.errors import invalid_response
from worker.azureml.http import request_json
from worker.azureml.locations import ProtocolModel
from worker.azureml.retry import RetryPolicy, with_retries

API_VERSION = "2.0"
SCORED_LABELS = "Scored Labels"


class _Table(ProtocolModel):
    column_names: list[str]
    values: list[list[str | None]]


class _Output(ProtocolModel):
    value: _Table = Field(alias="value")


class _Reply(ProtocolModel):
    results: dict[str, _Output]


def parse_score_reply(payload: object, output: str = "output1") -> list[dict[str, str | None]]:
    """Rows of an RRS table answer (PROTOCOL §4) as column → cell mappings."""
    try:
        reply = _Reply.model_validate(payload)
    except ValidationError as exc:
        raise invalid_response(exc) from exc
    if output not in reply.results:
        raise invalid_response(f"no output {output!r} in the score answer")
    table = reply.results[output].value
    if any(len(row) != len(table.column_names) for row in table.values):
        raise invalid_response("a scored row does not match the column names")
    return [dict(zip(table.column_names, row, strict=True)) for row in table.values]


class RrsClient:
    """Scores rows through any runtime base (classic endpoint or new service) with its key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: RetryPolicy | None = None,
        *,
        timeout_seconds: float = 20.0,
    ) -> None:
        self._session = session
        self._policy = policy or RetryPolicy()
        self._timeout = timeout_seconds

    async def score(
        self,
        base_url: str,
        api_key: SecretStr,
        column_names: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        input_name: str = "input1",
        output_name: str = "output1",
    ) -> list[dict[str, str | None]]:
        """Score ``rows`` (cells as strings); each answer row includes ``Scored Labels``."""
        url = f"{base_url.rstrip('/')}/execute?api-version={API_VERSION}&details=true"
        body = {
            "Inputs": {
                input_name: {"ColumnNames": list(column_names), "Values": [list(r) for r in rows]}
            },
            "GlobalParameters": {},
        }
        # Scoring changes nothing remotely, so repeating it is safe.
        reply = await with_retries(
            lambda: request_json(
                self._session,
                "POST",
                url,
                token=api_key,
                timeout_seconds=self._timeout,
                json_body=body,
            ),
            self._policy,
            idempotent=True,
        )
        return parse_score_reply(reply.body, output_name)
