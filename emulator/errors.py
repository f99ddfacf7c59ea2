"""Error answers of every emulated surface, in Azure ML's body shape (PROTOCOL.md §3).

``ApiError`` is raised anywhere below a handler; ``error_middleware`` renders it as
``{"error": {"code", "message", "details": [{"code", "message"}]}}`` and turns aiohttp's own
404/405 and unexpected exceptions into the same shape (never a traceback).
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

log = structlog.get_logger("emulator")


class ApiError(Exception):
    """An error answer: HTTP status, error class, message and an optional detail code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}

    def __str__(self) -> str:
        suffix = f"/{self.detail}" if self.detail else ""
        return f"{self.status} {self.code}{suffix}: {self.message}"

    def body(self) -> dict[str, Any]:
        """The JSON error document."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            error["details"] = [{"code": self.detail, "message": self.message}]
        return {"error": error}

    def response(self) -> web.Response:
        """The aiohttp response carrying this error."""
        return web.json_response(self.body(), status=self.status, headers=self.headers)


class ConnectionDropped(Exception):
    """Raised after the transport was closed on purpose (commit-then-drop); no reply follows."""


def bad_argument(detail: str, message: str) -> ApiError:
    """400 BadArgument with a detail code."""
    return ApiError(400, "BadArgument", message, detail)


def not_found(message: str, detail: str | None = None) -> ApiError:
    """404 NotFound."""
    return ApiError(404, "NotFound", message, detail)


def unauthorized() -> ApiError:
    """401 for a missing or wrong key (the runtime's exact answer)."""
    return ApiError(
        401, "Unauthorized", "Invalid credentials provided.", "ScoreRequestUnauthorized"
    )


def request_body_invalid(message: str) -> ApiError:
    """400 for a body that is not the expected JSON."""
    return bad_argument("RequestBodyInvalid", message)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; 400 RequestBodyInvalid when it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise request_body_invalid(f"The request body is not valid JSON: {exc}") from exc


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise request_body_invalid("The request body must be a JSON object.")
    return body


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ``ApiError`` and aiohttp's HTTP errors as Azure ML error bodies."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except ConnectionDropped:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "NotFound", 405: "MethodNotAllowed", 413: "MemoryQuotaViolation"}.get(
            exc.status, "BadArgument"
        )
        return ApiError(exc.status, code, exc.reason).response()
    except Exception:
        log.exception("request.failed", method=request.method, path=request.path)
        return ApiError(
            500, "InternalError", "The emulator failed to handle the request."
        ).response()
