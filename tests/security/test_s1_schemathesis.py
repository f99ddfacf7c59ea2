"""S1: schemathesis against the served ``/openapi.json``, stateful phase included (the document's
links chain onboarding to every tenant route, retrains to runs, batches and schedules): no 5xx,
no response outside the schema, no resource missing right after its creation; every operation
gets at least the configured number of cases."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producer.api.openapi import build_openapi
from producer.devtools.processes import console_script
from tests.integration.conftest_api import ADMIN_KEY
from tests.security.support import FULL, ServedApi, report, size

EXAMPLES = size(50, 500)

# Not "use_after_free": DELETE on a run cancels it and the run stays readable (state
# cancelled), which that check reads as a failure. test_s3 asserts that an offboarded tenant
# is gone at once.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "ensure_resource_availability",
    ]
)

CONFIG = """
# Ids captured from earlier responses would make most generated cases of DELETE routes
# repeats (hypothesis then stops early); the stateful phase follows the ids instead.
[phases.fuzzing]
extra-data-sources.responses = false
"""


def _inputless() -> set[str]:
    """Operations without parameters or body: one request is every case they have."""
    return {
        f"{method.upper()} {path}"
        for path, methods in build_openapi()["paths"].items()
        for method, operation in methods.items()
        if not operation.get("parameters") and "requestBody" not in operation
    }


INPUTLESS = _inputless()


def _operations() -> list[tuple[str, str, re.Pattern[str]]]:
    """(method, path template, URL path regex) of every operation in the document."""
    found = []
    for path, methods in build_openapi()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method in methods:
            found.append((method.upper(), path, pattern))
    return found


def _per_operation(har: dict[str, Any]) -> tuple[Counter[str], Counter[int], int]:
    """Requests per operation, responses by status, and requests matching no operation."""
    operations = _operations()
    cases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    unmatched = 0
    for entry in har["log"]["entries"]:
        method = entry["request"]["method"]
        path = re.sub(r"^https?://[^/]+", "", entry["request"]["url"]).split("?", 1)[0]
        statuses[int(entry["response"]["status"])] += 1
        label = next(
            (f"{m} {p}" for m, p, rx in operations if m == method and rx.match(path)), None
        )
        if label is None:
            unmatched += 1
        else:
            cases[label] += 1
    return cases, statuses, unmatched


@pytest.mark.timeout(3600 if FULL else 240)
def test_schemathesis_stateful_finds_no_failure(
    served_api: Callable[..., ServedApi], tmp_path: Path
) -> None:
    """Examples, coverage, fuzzing and stateful phases: 0 failures, N+ cases per operation."""
    api = served_api()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    har_path = tmp_path / "cases.har"
    json_path = tmp_path / "report.json"
    command = [
        console_script("st"),
        "--config-file",
        str(config),
        "run",
        f"{api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        "7",
        "--workers",
        "1",  # hypothesis' lambda introspection is not thread-safe (spurious runtime errors)
        "--request-timeout",
        "15",
        "--no-color",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "too_slow",
        "--report",
        "har,json",
        "--report-har-path",
        str(har_path),
        "--report-json-path",
        str(json_path),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=3500 if FULL else 220,
        cwd=tmp_path,
    )
    (tmp_path / "st.out").write_text(done.stdout + done.stderr)
    summary = json.loads(json_path.read_text())
    cases, statuses, unmatched = _per_operation(json.loads(har_path.read_text()))
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", done.stdout)
    scenarios = re.search(r"Scenarios:\s+(\d+)", done.stdout)
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    figures = report(
        "S1",
        examples_per_operation=EXAMPLES,
        requests=sum(statuses.values()),
        operations=len(_operations()),
        min_cases_per_operation=min((n for k, n in cases.items() if k not in INPUTLESS), default=0),
        cases_per_operation=dict(sorted(cases.items())),
        statuses=dict(sorted(statuses.items())),
        unmatched_requests=unmatched,
        generated=summary["test_cases"]["generated"],
        failures=summary["failures"],
        errors=summary["errors"],
        phases={name: phase["status"] for name, phase in summary["phases"].items()},
        stateful_scenarios=int(scenarios.group(1)) if scenarios else None,
        links_covered=f"{links.group(1)}/{links.group(2)}" if links else None,
        server_errors=server_errors,
        seconds=summary["running_time"],
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert summary["failures"] == [], figures
    assert summary["errors"] == [], figures
    assert summary["phases"]["stateful"]["status"] == "success", figures
    assert server_errors == 0, figures
    missing = {f"{m} {p}" for m, p, _ in _operations()} - set(cases)
    assert not missing, missing
    inputs = {k: n for k, n in cases.items() if k not in INPUTLESS}
    assert min(inputs.values()) >= EXAMPLES, figures
