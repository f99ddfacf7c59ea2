"""S3: bad credentials beyond test_api_auth's cases — near-miss admin keys, other schemes, key
hashes sent as keys, keys on every kind of route — are never accepted; offboarding revokes a
tenant key for the very next request."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from producer.api.auth import hash_key
from tests.integration.conftest_api import ADMIN, ADMIN_KEY, CSV, onboard
from tests.security.support import report, size

REVOKED_TENANTS = size(5, 50)

Client = TestClient[web.Request, web.Application]


def _bad_headers(tenant_key: str) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be refused (the tenant key is a real one)."""
    basic = base64.b64encode(f"admin:{ADMIN_KEY}".encode()).decode()
    return {
        "missing": {},
        "empty": {"Authorization": ""},
        "scheme only": {"Authorization": "Bearer "},
        "basic with the admin key": {"Authorization": f"Basic {basic}"},
        "token scheme": {"Authorization": f"Token {ADMIN_KEY}"},
        "digest scheme": {"Authorization": f'Digest username="{ADMIN_KEY}"'},
        "bearer with colon": {"Authorization": f"Bearer: {ADMIN_KEY}"},
        "no space": {"Authorization": f"Bearer{ADMIN_KEY}"},
        "tab separator": {"Authorization": f"Bearer\t{ADMIN_KEY}"},
        "key in another header": {"X-Api-Key": ADMIN_KEY},
        "admin key with inner space": {
            "Authorization": f"Bearer {ADMIN_KEY[:10]} {ADMIN_KEY[10:]}"
        },
        "admin key with inner tab": {"Authorization": f"Bearer {ADMIN_KEY[:10]}\t{ADMIN_KEY[10:]}"},
        "admin key and junk": {"Authorization": f"Bearer {ADMIN_KEY} junk"},
        "admin key with suffix": {"Authorization": f"Bearer {ADMIN_KEY}x"},
        "admin key truncated": {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"},
        "admin key upper case": {"Authorization": f"Bearer {ADMIN_KEY.upper()}"},
        "admin key quoted": {"Authorization": f'Bearer "{ADMIN_KEY}"'},
        "admin key base64": {
            "Authorization": f"Bearer {base64.b64encode(ADMIN_KEY.encode()).decode()}"
        },
        "two bearer keys": {"Authorization": f"Bearer {ADMIN_KEY}, Bearer {ADMIN_KEY}"},
        "tenant key hash": {"Authorization": f"Bearer {hash_key(tenant_key)}"},
        "tenant key with suffix": {"Authorization": f"Bearer {tenant_key}x"},
        "tenant key truncated": {"Authorization": f"Bearer {tenant_key[:-1]}"},
        "tenant key without prefix": {"Authorization": f"Bearer {tenant_key[4:]}"},
        "unknown tenant key": {"Authorization": "Bearer rtq_" + "A" * 43},
        "overlong key": {"Authorization": "Bearer " + ADMIN_KEY * 20},
    }


# One route of each kind: admin listing, tenant read, tenant write, upload, run, schedules.
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/tenants", None),
    ("GET", "/v1/tenants/acme", None),
    ("PATCH", "/v1/tenants/acme", {"display_name": "x"}),
    ("PUT", "/v1/tenants/acme/data", CSV),
    ("POST", "/v1/tenants/acme/retrains", None),
    ("DELETE", "/v1/tenants/acme", None),
    ("GET", "/v1/runs/{run}", None),
    ("POST", "/v1/batches", {"all": True}),
    ("GET", "/v1/schedules", None),
    ("GET", "/v1/me", None),
]


async def _call(api: Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    async with api.request(method, path, **kwargs) as answer:
        return answer.status, answer.headers.get("WWW-Authenticate", ""), await answer.text()


async def test_bad_credentials_are_never_accepted(api: Client) -> None:
    """Every bad header on one route of each kind: 401 with a challenge, key never echoed."""
    created = await onboard(api, "acme", data_path="data/acme/a.csv")
    tenant_key = created["api_key"]
    run_id = created["run"]["id"]
    accepted: list[str] = []
    not_401: dict[str, int] = {}
    echoed: list[str] = []
    requests = 0
    for name, headers in _bad_headers(tenant_key).items():
        for method, path, body in ROUTES:
            status, challenge, text = await _call(
                api, method, path.format(run=run_id), body, headers
            )
            requests += 1
            where = f"{name}: {method} {path}"
            if status < 400:
                accepted.append(where)
            if status != 401 or not challenge.startswith("Bearer"):
                not_401[where] = status
            if ADMIN_KEY in text or tenant_key in text:
                echoed.append(where)
    tenant = await (await api.get("/v1/tenants/acme", headers=ADMIN)).json()
    report(
        "S3-bad-credentials",
        kinds=len(_bad_headers(tenant_key)),
        requests=requests,
        accepted=len(accepted),
        not_401=not_401,
        echoed=len(echoed),
    )
    assert accepted == []
    assert not_401 == {}
    assert echoed == []
    assert tenant["display_name"] == ""
    assert tenant["data_version"] == 0
    # The real keys work (the refusals above are not a broken auth).
    assert (await api.get("/v1/tenants", headers=ADMIN)).status == 200
    own = {"Authorization": f"Bearer {tenant_key}"}
    assert (await api.get("/v1/tenants/acme", headers=own)).status == 200


async def test_offboarding_revokes_the_tenant_key_at_once(api: Client) -> None:
    """After DELETE /v1/tenants/{id} answers, the very next request with the old key is 401."""
    accepted_after = 0
    answers: list[int] = []
    for index in range(REVOKED_TENANTS):
        tenant_id = f"gone-{index}"
        created = await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv")
        own = {"Authorization": f"Bearer {created['api_key']}"}
        assert (await api.get(f"/v1/tenants/{tenant_id}", headers=own)).status == 200
        assert (await api.delete(f"/v1/tenants/{tenant_id}", headers=ADMIN)).status == 200
        for method, path, body in (
            ("GET", f"/v1/tenants/{tenant_id}", None),
            ("POST", f"/v1/tenants/{tenant_id}/retrains", None),
            ("PUT", f"/v1/tenants/{tenant_id}/data", CSV),
            ("GET", f"/v1/runs/{created['run']['id']}", None),
            ("GET", "/v1/me", None),
        ):
            status, _, _ = await _call(api, method, path, body, own)
            answers.append(status)
            accepted_after += status < 400
        # The admin sees the tenant gone; onboarding the id again is refused; the key stays dead.
        assert (await api.get(f"/v1/tenants/{tenant_id}", headers=ADMIN)).status == 404
        again = {"id": tenant_id, "target": {"kind": "new", "template_service": "t"}}
        assert (await api.post("/v1/tenants", json=again, headers=ADMIN)).status == 409
        assert (await api.get("/v1/me", headers=own)).status == 401
    report(
        "S3-revocation",
        tenants=REVOKED_TENANTS,
        requests_after_revocation=len(answers),
        accepted_after_revocation=accepted_after,
        statuses=sorted(set(answers)),
    )
    assert accepted_after == 0
    assert set(answers) == {401}
