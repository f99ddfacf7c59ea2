"""Log lines of a real retrain: one JSON event per line, no multi-line HTTP traces."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.fleet import Fleet
from worker.schemas import RunState

pytestmark = pytest.mark.timeout(120)


def strings_with_line_breaks(value: Any, path: str = "") -> list[str]:
    """Paths of every string inside ``value`` that holds a line break."""
    if isinstance(value, str):
        return [path] if "\n" in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in strings_with_line_breaks(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in strings_with_line_breaks(v, f"{path}[{i}]")]
    return []


async def retrain_once(fleet: Fleet, tenant_id: str, **settings: str) -> list[dict[str, Any]]:
    """Retrain one tenant on a fresh worker and return the worker's log events (it logged the
    run's steps: some events carry the run id)."""
    tenant = await fleet.onboard(tenant_id)
    (worker,) = fleet.start_workers(1, **settings)
    runs = await fleet.wait_terminal([await fleet.retrain(tenant.id)])
    assert runs[0].state is RunState.SUCCEEDED, runs[0].error
    fleet.stop_workers()
    events = [json.loads(line) for line in worker.log_path.read_text().splitlines()]
    assert [e for e in events if e.get("run_id") == runs[0].id]
    return events


async def test_one_retrain_at_the_default_level_writes_no_multi_line_event(fleet: Fleet) -> None:
    """Every line is one JSON event without line breaks, and no HTTP library traces appear."""
    events = await retrain_once(fleet, "quiet")
    assert [e for e in events if strings_with_line_breaks(e)] == []
    assert [e for e in events if str(e.get("logger", "")).startswith("azure")] == []


async def test_http_traces_at_debug_are_one_event_each_with_redacted_headers(
    fleet: Fleet,
) -> None:
    """At DEBUG the blob traffic is logged as http.request/http.response events, one line each."""
    events = await retrain_once(fleet, "chatty", RETRAINQ_LOG__LEVEL="DEBUG")
    assert [e for e in events if strings_with_line_breaks(e)] == []
    requests = [e for e in events if e["event"] == "http.request"]
    responses = [e for e in events if e["event"] == "http.response"]
    assert requests
    assert responses
    assert all(r["method"] and r["url"] and isinstance(r["headers"], dict) for r in requests)
    assert all(isinstance(r["status"], int) for r in responses)
    signed = [r["headers"]["Authorization"] for r in requests if "Authorization" in r["headers"]]
    assert signed
    assert set(signed) <= {"***", "REDACTED"}
