"""The API reference at ``/docs`` (Swagger UI on ``/openapi.json``) and ``/`` leading to ``/ui``.

Swagger UI's files come from the ``swagger-ui-py`` package, which ships them, so the page
loads nothing from any other origin. Both pages are public, like ``/openapi.json``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aiohttp import web

DOCS_DIR = Path(__file__).with_name("apidocs")
# The directory of Swagger UI's built files inside the installed swagger-ui-py package.
SWAGGER_UI_DIR = Path(str(files("swagger_ui") / "static"))
DOCS_HEADERS = {
    # Swagger UI sets inline styles on its elements; scripts and everything else stay 'self'.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def root(_request: web.Request) -> web.Response:
    """``GET /``: the dashboard is the front page."""
    raise web.HTTPFound("/ui")


async def docs_index(_request: web.Request) -> web.FileResponse:
    """``GET /docs``: the API reference page."""
    return web.FileResponse(DOCS_DIR / "index.html")


async def docs_init(_request: web.Request) -> web.FileResponse:
    """``GET /docs/init.js``: starts Swagger UI on ``/openapi.json``."""
    return web.FileResponse(DOCS_DIR / "init.js")


async def docs_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on the reference page and its files (an ``on_response_prepare`` signal)."""
    if request.path == "/docs" or request.path.startswith("/docs/"):
        response.headers.update(DOCS_HEADERS)


def add_routes(app: web.Application) -> None:
    """Register ``/``, ``/docs`` and Swagger UI's files under ``/docs/assets/``."""
    app.router.add_get("/", root)
    app.router.add_get("/docs", docs_index)
    app.router.add_get("/docs/", docs_index)
    app.router.add_get("/docs/init.js", docs_init)
    app.router.add_static(
        "/docs/assets/", SWAGGER_UI_DIR, follow_symlinks=False, append_version=False
    )
    app.on_response_prepare.append(docs_headers)
