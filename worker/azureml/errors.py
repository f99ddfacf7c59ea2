"""Errors of the Azure ML (classic) boundary, and the one place HTTP failures become them.

::

    AzureMLError
     ├── TransientError         connection errors, timeouts, 408, 429, 5xx but 501/505
     │    └── ThrottledError    429 and 503: the service asks us to slow down (retry_after)
     └── PermanentError         every other 4xx (never retried), 501/505, unexpected answers
          ├── NotFoundError     404
          └── CannotStartJobError  400 CannotStartJob: the BES job was already started or ended

Every error carries the call's context (method, redacted URL, status, the remote error code
and detail code, tenant and run) and never a secret: URLs lose their query values except a
few harmless ones and remote messages pass through the log redactor.
"""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from worker.logs import MASK, redact_text

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
THROTTLED_STATUSES = frozenset({429, 503})
# 5xx that say the request itself can never work there: repeating it is pointless.
_PERMANENT_5XX = frozenset({501, 505})
_SAFE_QUERY = frozenset({"api-version", "details", "format"})
_MESSAGE_LIMIT = 500


class AzureMLError(Exception):
    """A call to an Azure ML surface failed; see the subclasses for what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
        detail_code: str | None = None,
        tenant_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.message = redact_text(message)[:_MESSAGE_LIMIT]
        self.method = method
        self.url = redact_url(url) if url is not None else None
        self.status = status
        self.code = code
        self.detail_code = detail_code
        self.tenant_id = tenant_id
        self.run_id = run_id
        super().__init__(self.message)

    def bind(self, *, tenant_id: str | None = None, run_id: str | None = None) -> Self:
        """Attach the tenant and run the failed call was made for; returns ``self``."""
        if tenant_id is not None:
            self.tenant_id = tenant_id
        if run_id is not None:
            self.run_id = run_id
        return self

    @property
    def remote_code(self) -> str | None:
        """The most specific remote error code: the detail code, else the class code, else
        ``http_<status>`` for an answer without an error body."""
        if self.detail_code or self.code:
            return self.detail_code or self.code
        return f"http_{self.status}" if self.status is not None else None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.method and self.url:
            parts.append(f"{self.method} {self.url}")
        if self.status is not None:
            parts.append(f"-> {self.status}")
        codes = "/".join(c for c in (self.code, self.detail_code) if c)
        head = " ".join(parts)
        text = f"{head}: " if head else ""
        text += f"{codes}: {self.message}" if codes else self.message
        context = ", ".join(
            f"{name}={value}"
            for name, value in (("tenant_id", self.tenant_id), ("run_id", self.run_id))
            if value
        )
        return f"{text} ({context})" if context else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class TransientError(AzureMLError):
    """The call may succeed if repeated later (network trouble, timeouts, 408/429/5xx)."""


class ThrottledError(TransientError):
    """The service is overloaded (429/503); ``retry_after`` is its hint in seconds, if any."""

    retry_after: float | None = None


class PermanentError(AzureMLError):
    """Repeating the call unchanged will fail again (bad request, auth, unexpected answer)."""


class NotFoundError(PermanentError):
    """The addressed service, endpoint, job or web service does not exist (404)."""


class CannotStartJobError(PermanentError):
    """A BES start was refused because the job is no longer NotStarted (400 CannotStartJob)."""


class _RemoteErrorDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str | None = None
    message: str | None = None


class _RemoteError(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str | None = None
    message: str | None = None
    details: list[_RemoteErrorDetail] | None = None


class _RemoteErrorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    error: _RemoteError


class RemoteErrorInfo(BaseModel):
    """What an error body (PROTOCOL §3) says: class code, detail code and the best message."""

    model_config = ConfigDict(frozen=True)
    code: str | None = None
    detail_code: str | None = None
    message: str | None = None


def parse_error_body(body: bytes | str) -> RemoteErrorInfo:
    """Parse ``{"error": {"code", "message", "details": [{"code", "message"}]}}``; tolerant."""
    try:
        parsed = _RemoteErrorBody.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return RemoteErrorInfo()
    error = parsed.error
    detail = error.details[0] if error.details else None
    detail_message = detail.message if detail else None
    return RemoteErrorInfo(
        code=error.code,
        detail_code=detail.code if detail else None,
        message=detail_message or error.message,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def redact_url(url: str) -> str:
    """``url`` without credentials: user info dropped, query values masked except harmless ones."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    query = urlencode(
        [
            (name, value if name.lower() in _SAFE_QUERY else MASK)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def is_transient_status(status: int) -> bool:
    """Whether an answer with ``status`` may succeed if the call is repeated later."""
    return status in TRANSIENT_STATUSES or (500 <= status <= 599 and status not in _PERMANENT_5XX)


def error_for_status(
    status: int,
    body: bytes | str,
    *,
    method: str,
    url: str,
    retry_after: str | None = None,
    tenant_id: str | None = None,
    run_id: str | None = None,
) -> AzureMLError:
    """The error for a non-2xx answer: class by status, codes and message from the body."""
    info = parse_error_body(body)
    cls: type[AzureMLError]
    if status in THROTTLED_STATUSES:
        cls = ThrottledError
    elif is_transient_status(status):
        cls = TransientError
    elif status == 404:
        cls = NotFoundError
    elif status == 400 and info.detail_code == "CannotStartJob":
        cls = CannotStartJobError
    else:
        cls = PermanentError
    error = cls(
        info.message or f"HTTP {status} without an error body",
        method=method,
        url=url,
        status=status,
        code=info.code,
        detail_code=info.detail_code,
        tenant_id=tenant_id,
        run_id=run_id,
    )
    if isinstance(error, ThrottledError):
        error.retry_after = parse_retry_after(retry_after)
    return error


def error_for_exception(
    exc: BaseException,
    *,
    method: str,
    url: str,
    tenant_id: str | None = None,
    run_id: str | None = None,
) -> AzureMLError:
    """The error for a failure below HTTP: timeouts and connection trouble are transient."""
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentError(
            f"invalid URL ({type(exc).__name__})",
            method=method,
            url=url,
            code="InvalidUrl",
            tenant_id=tenant_id,
            run_id=run_id,
        )
    if isinstance(exc, TimeoutError):
        message, code = "request timed out", "Timeout"
    else:
        message, code = f"{type(exc).__name__}: {exc}".rstrip(": "), "ConnectionError"
    return TransientError(
        message, method=method, url=url, code=code, tenant_id=tenant_id, run_id=run_id
    )


def invalid_response(
    problem: str | ValidationError, *, method: str | None = None, url: str | None = None
) -> PermanentError:
    """A permanent error for a 2xx answer we cannot use; never echoes the payload's values."""
    if isinstance(problem, ValidationError):
        # Pydantic's own text repeats input values, which may be keys or SAS tokens.
        problem = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in problem.errors(include_url=False, include_input=False)[:5]
        )
    return PermanentError(
        f"unexpected response: {problem}", method=method, url=url, code="InvalidResponse"
    )
