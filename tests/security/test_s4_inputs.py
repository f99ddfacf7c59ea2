"""S4: oversize and invalid inputs get the right 413/422 (never a 5xx), and a huge CSV upload is
refused without the API process's memory growing with it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from tests.integration.conftest_api import ADMIN, CSV, classic_target
from tests.security.support import ServedApi, report, size, vm_rss_kib

MAX_BODY = 256 * 1024  # holds 10,001 batch ids, so that case reaches validation
MAX_UPLOAD = 4 * 1024 * 1024
OVERSIZE_UPLOADS = size(3, 10)
# What one oversize upload may add to the API's resident memory: the accepted bytes it
# buffers (the limit) plus allocator slack; far less than the 3x limit streamed at it.
RSS_BOUND_KIB = (MAX_UPLOAD + 8 * 1024 * 1024) // 1024


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _json_cases() -> list[tuple[str, str, str, bytes, int]]:
    """(name, method, path, body, expected status) of oversize and invalid JSON bodies."""
    tenant = {"id": "acme", "target": classic_target()}
    big = "x" * (MAX_BODY + 1)
    cases: list[tuple[str, str, str, bytes, int]] = [
        ("body over limit: onboard", "POST", "/v1/tenants", _json({**tenant, "n": big}), 413),
        ("body over limit: patch", "PATCH", "/v1/tenants/acme", _json({"display_name": big}), 413),
        ("body over limit: batch", "POST", "/v1/batches", _json({"reason": big}), 413),
        (
            "body over limit: retrain",
            "POST",
            "/v1/tenants/acme/retrains",
            _json({"reason": big}),
            413,
        ),
        ("body over limit: schedule", "PUT", "/v1/schedules/n", _json({"cron": big}), 413),
        ("deep array", "POST", "/v1/tenants", b"[" * 30_000 + b"]" * 30_000, 422),
        ("deep object", "POST", "/v1/tenants", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 422),
        (
            "deep target",
            "POST",
            "/v1/tenants",
            _json({**tenant, "target": json.loads('{"a":' * 200 + "1" + "}" * 200)}),
            422,
        ),
        ("wide object", "POST", "/v1/tenants", _json({f"k{i}": i for i in range(4000)}), 422),
        (
            "huge display name",
            "POST",
            "/v1/tenants",
            _json({**tenant, "display_name": "y" * 60_000}),
            422,
        ),
        ("huge id", "POST", "/v1/tenants", _json({**tenant, "id": "a" * 60_000}), 422),
        ("huge reason", "POST", "/v1/tenants/acme/retrains", _json({"reason": "r" * 60_000}), 422),
        ("huge number", "POST", "/v1/tenants", b'{"train":' + b"9" * 50_000 + b"}", 422),
        ("nan threshold", "PATCH", "/v1/tenants/acme", b'{"gate":{"threshold":NaN}}', 422),
        (
            "65 global parameters",
            "PATCH",
            "/v1/tenants/acme",
            _json({"global_parameters": {f"p{i}": "v" for i in range(65)}}),
            422,
        ),
        (
            "long parameter value",
            "PATCH",
            "/v1/tenants/acme",
            _json({"global_parameters": {"p": "v" * 4097}}),
            422,
        ),
        ("id with slash", "POST", "/v1/tenants", _json({**tenant, "id": "ac/me"}), 422),
        ("id with dots", "POST", "/v1/tenants", _json({**tenant, "id": ".."}), 422),
        ("id with NUL", "POST", "/v1/tenants", _json({**tenant, "id": "acme\u0000"}), 422),
        ("id with unicode", "POST", "/v1/tenants", _json({**tenant, "id": "acmé"}), 422),
        ("id upper case", "POST", "/v1/tenants", _json({**tenant, "id": "ACME"}), 422),
        ("id 64 chars", "POST", "/v1/tenants", _json({**tenant, "id": "a" * 64}), 422),
        (
            "data path escape",
            "PATCH",
            "/v1/tenants/acme",
            _json({"data_path": "data/../../etc"}),
            422,
        ),
        (
            "data path absolute",
            "PATCH",
            "/v1/tenants/acme",
            _json({"data_path": "/etc/passwd"}),
            422,
        ),
        ("bad cron", "PATCH", "/v1/tenants/acme", _json({"schedule": "* * * * * * *"}), 422),
        (
            "10,001 batch ids",
            "POST",
            "/v1/batches",
            _json({"tenant_ids": [f"t{i}" for i in range(10_001)]}),
            422,
        ),
        (
            "batch id with bad characters",
            "POST",
            "/v1/batches",
            _json({"tenant_ids": ["ok", "../x"]}),
            422,
        ),
        ("not UTF-8 JSON", "POST", "/v1/tenants", b'{"id":"\xff\xfe"}', 422),
        ("JSON with BOM", "POST", "/v1/tenants", b"\xef\xbb\xbf" + _json(tenant), 422),
        ("truncated JSON", "POST", "/v1/tenants", _json(tenant)[:-3], 422),
        ("bad idempotency key", "POST", "/v1/tenants/acme/retrains", b"", 422),
    ]
    return cases


async def test_oversize_and_invalid_json_bodies(
    served_api: Callable[..., ServedApi],
) -> None:
    """Each case answers its 413 or 422 as problem+json; 0 responses are 5xx."""
    api = served_api(RETRAINQ_MAX_BODY_BYTES=str(MAX_BODY))
    wrong: dict[str, tuple[int, int]] = {}
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(api.url) as http:
        onboard = {"id": "acme", "target": classic_target()}
        async with http.post("/v1/tenants", json=onboard, headers=ADMIN) as created:
            assert created.status == 201
        for name, method, path, body, expected in _json_cases():
            headers = {**ADMIN, "Content-Type": "application/json"}
            if name == "bad idempotency key":
                headers["Idempotency-Key"] = "k" * 129
            async with http.request(method, path, data=body, headers=headers) as answer:
                statuses[answer.status] += 1
                kind = answer.content_type
                await answer.read()
            if answer.status != expected or kind != "application/problem+json":
                wrong[name] = (answer.status, expected)
    report(
        "S4-json",
        cases=len(_json_cases()),
        statuses=dict(statuses),
        wrong=wrong,
        server_errors=sum(n for s, n in statuses.items() if s >= 500),
    )
    assert wrong == {}
    assert not [s for s in statuses if s >= 500]


async def _streamed(total: int, chunk: bytes) -> AsyncIterator[bytes]:
    """``total`` bytes of CSV-looking rows, produced as they are sent (no length known)."""
    yield b"a,b,c\n"
    sent = 6
    while sent < total:
        yield chunk
        sent += len(chunk)


async def test_huge_upload_is_413_with_bounded_memory(
    served_api: Callable[..., ServedApi],
) -> None:
    """Uploads of 3x max_upload_bytes (chunked and with a length) answer 413; the API's RSS
    grows by less than the limit plus slack, not by what was streamed."""
    api = served_api(
        RETRAINQ_MAX_UPLOAD_BYTES=str(MAX_UPLOAD), RETRAINQ_BLOB__CONTAINER="security-uploads"
    )
    chunk = b"1,2,3\n" * 10_000
    statuses: list[int] = []
    async with aiohttp.ClientSession(api.url) as http:
        onboard = {"id": "acme", "target": classic_target()}
        async with http.post("/v1/tenants", json=onboard, headers=ADMIN) as created:
            assert created.status == 201
        # Warm up: one accepted upload, so buffers and clients exist before the baseline.
        async with http.put("/v1/tenants/acme/data", data=CSV, headers=ADMIN) as first:
            assert first.status == 200
        before = vm_rss_kib(api.pid)
        peak = before
        streamed = 0
        for index in range(OVERSIZE_UPLOADS):
            total = 3 * MAX_UPLOAD
            if index % 2:
                body: Any = b"a,b,c\n" + chunk * (total // len(chunk))
            else:
                body = _streamed(total, chunk)
            try:
                async with http.put("/v1/tenants/acme/data", data=body, headers=ADMIN) as answer:
                    statuses.append(answer.status)
                    await answer.read()
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                # The API may close the connection while the rest of the body is still sent.
                statuses.append(-1)
            streamed += total
            peak = max(peak, vm_rss_kib(api.pid))
        await asyncio.sleep(0.2)
        after = vm_rss_kib(api.pid)
        async with http.get("/v1/tenants/acme", headers=ADMIN) as tenant:
            data_version = (await tenant.json())["data_version"]
    report(
        "S4-upload",
        max_upload_bytes=MAX_UPLOAD,
        uploads=OVERSIZE_UPLOADS,
        streamed_mib=round(streamed / 2**20, 1),
        statuses=statuses,
        rss_before_mib=round(before / 1024, 1),
        rss_peak_mib=round(peak / 1024, 1),
        rss_after_mib=round(after / 1024, 1),
        rss_growth_mib=round((peak - before) / 1024, 1),
        rss_bound_mib=round(RSS_BOUND_KIB / 1024, 1),
    )
    assert statuses == [413] * OVERSIZE_UPLOADS
    assert peak - before < RSS_BOUND_KIB
    assert data_version == 1  # nothing of the refused uploads was stored


MALFORMED_CSV: dict[str, bytes] = {
    "empty": b"",
    "binary": bytes(range(256)) * 8,
    "gzip bytes": b"\x1f\x8b\x08\x00" + bytes(200),
    "no header (one line)": b"1,2,3",
    "header only": b"a,b,c\n",
    "uneven rows": b"a,b,c\n1,2,3\n4,5\n",
    "extra field": b"a,b\n1,2\n3,4,5\n",
    "not UTF-8": "a,b\nÄ,ö\n".encode("latin-1"),
    "UTF-16": "a,b\n1,2\n".encode("utf-16"),
    "empty column name": b"a,,c\n1,2,3\n",
    "duplicate columns": b"a,a\n1,2\n",
    "unterminated quote": b'a,b\n"1,2\n3,4\n',
    "NUL bytes": b"a,b\n1,\x002\n",
    "UTF-16 without BOM": "a,b\n1,2\n3,4\n".encode("utf-16-le"),
    "5000 columns": (
        ",".join(f"c{i}" for i in range(5000)) + "\n" + ",".join("1" * 5000) + "\n"
    ).encode(),
    "one huge field": b"a,b\n" + b"1" * 200_000 + b",2\n",
}


async def test_malformed_csv_is_422(served_api: Callable[..., ServedApi]) -> None:
    """Each malformed CSV answers 422 naming the problem; none is stored, none is a 5xx."""
    api = served_api(RETRAINQ_BLOB__CONTAINER="security-csv")
    wrong: dict[str, int] = {}
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(api.url) as http:
        onboard = {"id": "acme", "target": classic_target()}
        async with http.post("/v1/tenants", json=onboard, headers=ADMIN) as created:
            assert created.status == 201
        for name, data in MALFORMED_CSV.items():
            headers = {**ADMIN, "Content-Type": "text/csv"}
            async with http.put("/v1/tenants/acme/data", data=data, headers=headers) as answer:
                statuses[answer.status] += 1
                problem = await answer.json(content_type=None)
            if answer.status != 422 or "training data" not in problem.get("detail", ""):
                wrong[name] = answer.status
        async with http.get("/v1/tenants/acme", headers=ADMIN) as tenant:
            data_version = (await tenant.json())["data_version"]
    report(
        "S4-csv",
        cases=len(MALFORMED_CSV),
        statuses=dict(statuses),
        wrong=wrong,
        server_errors=sum(n for s, n in statuses.items() if s >= 500),
    )
    assert wrong == {}
    assert data_version == 0
