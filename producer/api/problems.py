"""RFC 9457 problem responses and the one middleware that turns every error into one."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import redis.exceptions as redis_errors
import structlog
from aiohttp import web
from pydantic import ValidationError

from worker.blobs import BlobStoreError
from worker.datapaths import DataPathError
from worker.store import StaleRecord, StoreError, TenantExists, TenantNotFound

PROBLEM_TYPE = "application/problem+json"
ABOUT_BLANK = "about:blank"
REDIS_RETRY_AFTER = 5
# A full Redis frees memory only when the archiver or an operator acts: ask for a longer wait.
REDIS_FULL_RETRY_AFTER = 60

log = structlog.get_logger("retrainq.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An error a handler answers with: status, short title, readable detail, extra fields."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A ``application/problem+json`` response."""
    body = {"type": ABOUT_BLANK, "title": title, "status": status, "detail": detail, **extra}
    return web.Response(
        status=status,
        body=json.dumps(body, default=str).encode(),
        headers={"Content-Type": PROBLEM_TYPE, **(headers or {})},
    )


def not_found(what: str, ident: str) -> Problem:
    """404 for a resource that does not exist (or that the caller may not see)."""
    return Problem(404, "Not Found", f"no {what} {ident!r}")


def validation_problem(exc: ValidationError) -> Problem:
    """422 listing what was wrong with the request, without echoing the input values."""
    errors = [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"]) or "body"
    return Problem(422, "Unprocessable Content", f"{where}: {first['msg']}", errors=errors[:50])


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    headers = {
        k: v
        for k, v in exc.headers.items()
        if k.lower() in ("allow", "retry-after", "www-authenticate")
    }
    detail = exc.text or exc.reason
    if exc.status == 413:
        detail = "the request body is larger than this API accepts"
    elif exc.status == 404:
        detail = "no such route"
    elif exc.status == 405:
        detail = "this route does not accept that method"
    return problem_response(exc.status, exc.reason, detail, headers)


def store_problem(exc: StoreError) -> Problem:
    """The 4xx of a record-store refusal: a missing or existing tenant, a busy record."""
    if isinstance(exc, TenantNotFound):
        return not_found("tenant", str(exc))
    if isinstance(exc, TenantExists):
        return Problem(409, "Conflict", f"tenant {str(exc)!r} exists (or was offboarded)")
    if isinstance(exc, StaleRecord):
        return Problem(
            409,
            "Conflict",
            "the record kept changing while this request updated it; try again",
            headers={"Retry-After": "1"},
        )
    return Problem(409, "Conflict", "the record store refused the change; try again")


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as a problem document; never a traceback, never a 500 for bad input."""
    try:
        return await handler(request)
    except Problem as exc:
        return problem_response(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)
    except ValidationError as exc:
        found = validation_problem(exc)
        return problem_response(found.status, found.title, found.detail, **found.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except DataPathError as exc:
        return problem_response(422, "Unprocessable Content", str(exc), code=exc.code)
    except StoreError as exc:
        found = store_problem(exc)
        return problem_response(found.status, found.title, found.detail, found.headers)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        log.warning("api.redis_unavailable", error=type(exc).__name__)
        return problem_response(
            503,
            "Service Unavailable",
            "the record store (Redis) is unreachable; try again shortly",
            {"Retry-After": str(REDIS_RETRY_AFTER)},
        )
    except redis_errors.OutOfMemoryError:
        log.warning("api.redis_full", path=request.path, method=request.method)
        return problem_response(
            503,
            "Service Unavailable",
            "the record store (Redis) is full (maxmemory reached) and refuses writes; nothing "
            "was recorded: try again later",
            {"Retry-After": str(REDIS_FULL_RETRY_AFTER)},
            code="redis_full",
        )
    except (ConnectionError, TimeoutError) as exc:
        # Not Redis (its client raises its own errors): a socket below another client.
        log.warning("api.backend_unavailable", error=type(exc).__name__)
        return problem_response(
            503,
            "Service Unavailable",
            "a service behind the API is unreachable; try again shortly",
            {"Retry-After": str(REDIS_RETRY_AFTER)},
        )
    except BlobStoreError as exc:
        log.warning("api.blob_error", error=str(exc), transient=exc.transient)
        return problem_response(
            503 if exc.transient else 502,
            "Service Unavailable" if exc.transient else "Bad Gateway",
            "blob storage failed to store the upload; try again",
            {"Retry-After": "5"} if exc.transient else None,
        )
    except Exception:
        log.exception("api.unhandled_error", path=request.path, method=request.method)
        return problem_response(
            500, "Internal Server Error", "the API failed to handle this request; it was logged"
        )
