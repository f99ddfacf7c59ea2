"""S6: a probe matrix over a real ``retrainq-api``: every route of ``/openapi.json`` with bad
credentials, and every request-body field with bad values, answers 4xx and leaks nothing.

Credentials: missing, malformed, not UTF-8 (raw bytes), another tenant's key, a revoked key.
Body fields: wrong JSON type, out of range, oversize. Figures go to docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp

from producer import schemas
from tests.integration.conftest_api import ADMIN, ADMIN_KEY, CSV, bearer
from tests.security.support import ServedApi, report, unhandled_errors

SECRET = "probe-secret-display-9931"
SELF_ROUTES = frozenset({"/v1/me", "/v1/runs"})
CREDENTIALS: dict[str, bytes | None] = {
    "missing": None,
    "malformed": b"Basic dmljdGltOnNlY3JldA==",
    "not utf-8": b"Bearer rtq_\xe9\xe8\xff",
}
BODIES: dict[tuple[str, str], type[schemas.Body]] = {
    ("POST", "/v1/tenants"): schemas.TenantCreate,
    ("PATCH", "/v1/tenants/{tenant_id}"): schemas.TenantPatch,
    ("POST", "/v1/tenants/{tenant_id}/retrains"): schemas.RetrainRequest,
    ("POST", "/v1/batches"): schemas.BatchCreate,
    ("PUT", "/v1/schedules/{name}"): schemas.ScheduleBody,
}
BASE: dict[type[schemas.Body], dict[str, Any]] = {
    schemas.TenantCreate: {
        "id": "probe-new",
        "target": {"kind": "new", "template_service": "t"},
        "train": False,
    },
    schemas.TenantPatch: {"display_name": "x"},
    schemas.RetrainRequest: {"reason": "probe"},
    schemas.BatchCreate: {"tenant_ids": ["victim"]},
    schemas.ScheduleBody: {"cron": "0 3 * * *"},
}


async def raw(url: str, method: str, path: str, auth: bytes | None) -> tuple[int, bytes]:
    """A bodyless request with ``Authorization`` sent as raw bytes (or left out)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
    if auth is not None:
        head += b"Authorization: " + auth + b"\r\n"
    writer.write(head + b"Content-Length: 0\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _mutations(field: str, value: Any) -> dict[str, Any]:
    """Wrong type, out of range and oversize values for a field whose valid value is ``value``."""
    wrong: Any = {"nested": [1]} if not isinstance(value, dict) else ["not", "an", "object"]
    if isinstance(value, bool):
        wrong = "yes"
    elif isinstance(value, int | float):
        wrong = str(value)
    out_of_range: Any = "" if isinstance(value, str) else -1e308
    if isinstance(value, bool):
        out_of_range = 2
    elif isinstance(value, list):
        out_of_range = []
    elif isinstance(value, dict):
        out_of_range = {"kind": "???"}
    oversize: Any = "x" * 200_000
    if isinstance(value, list):
        oversize = ["a"] * 20_000
    elif isinstance(value, dict):
        oversize = {f"k{i}": "v" for i in range(5_000)}
    return {"wrong type": wrong, "out of range": out_of_range, "oversize": oversize}


FIELD_VALUES: dict[type[schemas.Body], dict[str, Any]] = {
    schemas.TenantCreate: {
        "display_name": "d",
        "training_service": "default",
        "data_path": "data/probe-new/v1.csv",
        "global_parameters": {"a": "b"},
        "gate": {"metric": "r2", "direction": "higher_is_better"},
        "schedule": "0 3 * * *",
        "train": False,
    },
    schemas.TenantPatch: {
        "target": {"kind": "new", "template_service": "t"},
        "training_service": "default",
        "data_path": "data/victim/v2.csv",
        "global_parameters": {"a": "b"},
        "gate": {"metric": "r2", "direction": "higher_is_better"},
        "schedule": "0 3 * * *",
    },
    schemas.BatchCreate: {"all": True, "target_kind": "new", "reason": "r"},
    schemas.ScheduleBody: {"target_kind": "new"},
}


def _field_value(model: type[schemas.Body], field: str) -> Any:
    base = BASE[model]
    if field in base:
        return base[field]
    return FIELD_VALUES.get(model, {}).get(field, "x")


async def test_probe_matrix_answers_4xx_and_leaks_nothing(
    served_api: Callable[..., ServedApi],
) -> None:
    """Every route x bad credential and every body field x bad value: 0 5xx, 0 leaks."""
    served = served_api()
    url = served.url
    async with aiohttp.ClientSession(url) as http:

        async def call(method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
            kwargs: dict[str, Any] = {"headers": headers}
            if isinstance(body, bytes):
                kwargs["data"] = body
            elif body is not None:
                kwargs["json"] = body
            async with http.request(method, path, **kwargs) as answer:
                return answer.status, await answer.read()

        keys = {}
        for tenant_id in ("victim", "prober", "revoked"):
            body = {
                "id": tenant_id,
                "display_name": SECRET if tenant_id == "victim" else tenant_id,
                "target": {"kind": "new", "template_service": "t"},
                "train": False,
            }
            status, answer = await call("POST", "/v1/tenants", ADMIN, body)
            assert status == 201, answer
            keys[tenant_id] = json.loads(answer)["api_key"]
        victim = bearer(keys["victim"])
        status, _ = await call("PUT", "/v1/tenants/victim/data", victim, CSV)
        assert status == 200
        status, answer = await call("POST", "/v1/tenants/victim/retrains", victim, {})
        assert status == 202, answer
        run_id = json.loads(answer)["run"]["id"]
        status, answer = await call("POST", "/v1/batches", ADMIN, {"tenant_ids": ["victim"]})
        batch_id = json.loads(answer)["batch_id"]
        assert (await call("DELETE", "/v1/tenants/revoked", ADMIN))[0] == 200
        status, answer = await call("GET", "/openapi.json", {})
        document = json.loads(answer)

        fill = {"tenant_id": "victim", "run_id": run_id, "batch_id": batch_id, "name": "nightly"}
        routes = [
            (method.upper(), template)
            for template, item in document["paths"].items()
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        ]
        secrets = [SECRET.encode(), ADMIN_KEY.encode(), keys["victim"].encode()]
        statuses: dict[str, int] = {}
        server_errors: list[str] = []
        leaks: list[str] = []
        for method, template in routes:
            path = re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], template)
            public = template in ("/healthz", "/readyz", "/openapi.json")
            probes: list[tuple[str, Any]] = [
                (name, raw(url, method, path, auth)) for name, auth in CREDENTIALS.items()
            ]
            probes.append(("other tenant's", call(method, path, bearer(keys["prober"]))))
            probes.append(("revoked", call(method, path, bearer(keys["revoked"]))))
            for name, probe in probes:
                status, answer = await probe
                where = f"{name} {method} {template}"
                statuses[where] = status
                if status >= 500:
                    server_errors.append(where)
                if any(s in answer for s in secrets):
                    leaks.append(where)
                if run_id.encode() in answer and "{run_id}" not in template:
                    leaks.append(f"{where} shows the victim's run")
                # Routes that show the caller itself (its own runs) may answer a tenant key.
                self_route = template in SELF_ROUTES and name == "other tenant's"
                if status < 400 and not public and not self_route:
                    leaks.append(f"{where} -> {status}")
        field_probes = 0
        for (method, template), model in BODIES.items():
            path = re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], template)
            for field in model.model_fields:
                value = _field_value(model, field)
                for kind, bad in _mutations(field, value).items():
                    body = {**BASE[model], field: bad}
                    status, answer = await call(method, path, ADMIN, body)
                    field_probes += 1
                    where = f"{method} {template} {field} {kind}"
                    statuses[where] = status
                    if status >= 500:
                        server_errors.append(where)
                    if keys["victim"].encode() in answer or ADMIN_KEY.encode() in answer:
                        leaks.append(where)
    logged = unhandled_errors(served.log_text())
    report(
        "S6-probe-matrix",
        routes=len(routes),
        credential_probes=len(routes) * (len(CREDENTIALS) + 2),
        field_probes=field_probes,
        server_errors=len(server_errors),
        leaks=len(leaks),
        logged_500s=len(logged),
        statuses=sorted({s for s in statuses.values()}),
    )
    assert len(routes) >= 20, routes
    assert server_errors == []
    assert leaks == []
    assert logged == []
