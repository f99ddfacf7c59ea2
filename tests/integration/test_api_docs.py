"""``/docs`` serves Swagger UI from the API itself, without a key; ``/`` leads to ``/ui``."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

ApiTestClient = TestClient[Any, Any]
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


async def test_docs_page_is_public_and_loads_only_its_own_assets(api: ApiTestClient) -> None:
    """No key needed; every script and stylesheet is a path on the API, and each is served."""
    page = await api.get("/docs")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assets = ASSET.findall(await page.text())
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    assert all(asset.startswith("/docs/") for asset in assets)
    for asset in assets:
        served = await api.get(asset)
        assert served.status == 200, asset
        assert (await served.read()).strip()
    init = await (await api.get("/docs/init.js")).text()
    assert '"/openapi.json"' in init
    assert "http" not in init
    spec = await api.get("/openapi.json")
    assert spec.status == 200
    assert (await spec.json())["openapi"].startswith("3.1")


async def test_root_redirects_to_the_dashboard(api: ApiTestClient) -> None:
    """``GET /`` answers 302 to ``/ui`` without a key."""
    response = await api.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/ui"


async def test_other_routes_still_need_a_key(api: ApiTestClient) -> None:
    """Making /docs public opened nothing else: /docsx and /v1 routes are 401."""
    assert (await api.get("/v1/tenants")).status == 401
    assert (await api.get("/docsx")).status in (401, 404)
