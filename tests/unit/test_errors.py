"""Translating HTTP failures into the Azure ML error tree, without leaking secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import aiohttp
import pytest

from worker.azureml.errors import (
    AzureMLError,
    CannotStartJobError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
    error_for_exception,
    error_for_status,
    parse_error_body,
    parse_retry_after,
    redact_url,
)

URL = "http://127.0.0.1:9/workspaces/w/services/s/jobs?api-version=2.0"


def _body(code: str, message: str, detail: str | None = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if detail:
        error["details"] = [{"code": detail, "message": f"{detail} happened"}]
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),
        (401, PermanentError),
        (403, PermanentError),
        (404, NotFoundError),
        (408, TransientError),
        (409, PermanentError),
        (413, PermanentError),
        (429, ThrottledError),
        (500, TransientError),
        (502, TransientError),
        (503, ThrottledError),
        (504, TransientError),
    ],
)
def test_status_decides_the_class(status: int, kind: type[AzureMLError]) -> None:
    """408/429/5xx are transient (429/503 throttled); every other status is permanent."""
    error = error_for_status(status, b"", method="GET", url=URL)
    assert type(error) is kind
    assert error.status == status
    assert isinstance(error, TransientError) != isinstance(error, PermanentError)


def test_error_body_gives_codes_and_the_specific_message() -> None:
    """The PROTOCOL §3 body's class code, first detail code and detail message are kept."""
    body = _body("BadArgument", "Invalid argument provided.", "InvalidBlobExtension")
    error = error_for_status(400, body, method="POST", url=URL)
    assert (error.code, error.detail_code) == ("BadArgument", "InvalidBlobExtension")
    assert error.remote_code == "InvalidBlobExtension"
    assert error.message == "InvalidBlobExtension happened"


def test_cannot_start_job_is_recognisable() -> None:
    """A 400 with detail CannotStartJob is its own permanent error."""
    body = _body("InvalidOperation", "Job already started.", "CannotStartJob")
    error = error_for_status(400, body, method="POST", url=URL)
    assert isinstance(error, CannotStartJobError)
    assert isinstance(error, PermanentError)
    other = error_for_status(400, _body("BadArgument", "x", "MissingJobId"), method="POST", url=URL)
    assert not isinstance(other, CannotStartJobError)


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"error": "flat"}', b'{"message": "x"}', b"\xff\xfe"]
)
def test_odd_error_bodies_still_give_an_error(body: bytes) -> None:
    """Bodies that are not PROTOCOL §3 shaped fall back to a message naming the status."""
    info = parse_error_body(body)
    assert info.code is None
    error = error_for_status(502, body, method="GET", url=URL)
    assert "HTTP 502" in error.message


def test_throttled_error_carries_retry_after() -> None:
    """429/503 parse Retry-After in seconds; a missing header gives None."""
    error = error_for_status(429, b"", method="GET", url=URL, retry_after="7")
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 7.0
    unhinted = error_for_status(503, b"", method="GET", url=URL)
    assert isinstance(unhinted, ThrottledError)
    assert unhinted.retry_after is None


def test_retry_after_accepts_http_dates_and_ignores_garbage() -> None:
    """An HTTP date becomes seconds from now; past dates are zero; garbage is None."""
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(None) is None


def test_url_secrets_never_reach_the_error() -> None:
    """SAS signatures, keys and user info are masked in the URL and in str()."""
    url = "https://user:pw@acct.blob.core.windows.net/c/b.csv?sv=2020&sig=SECRETSIG&api-version=2.0"
    assert redact_url(url) == (
        "https://acct.blob.core.windows.net/c/b.csv?sv=***&sig=***&api-version=2.0"
    )
    body = _body("BadArgument", "bad", "InvalidBlobConnectionString")
    leaky = json.dumps(
        {"error": {"code": "BadArgument", "message": "AccountKey=SECRETKEY;x sig=1&sig=SECRETSIG"}}
    ).encode()
    for payload in (body, leaky):
        error = error_for_status(400, payload, method="PUT", url=url)
        text = f"{error} {error!r}"
        for secret in ("SECRETSIG", "SECRETKEY", "pw@"):
            assert secret not in text


def test_str_reads_as_one_line_with_context() -> None:
    """str() names method, URL, status, codes, message, tenant and run."""
    body = _body("ServiceUnavailable", "busy", "RequestThrottled")
    error = error_for_status(503, body, method="GET", url=URL, tenant_id="acme", run_id="r1").bind(
        run_id="r2"
    )
    assert str(error) == (
        f"GET {URL} -> 503: ServiceUnavailable/RequestThrottled: RequestThrottled happened "
        "(tenant_id=acme, run_id=r2)"
    )


def test_long_remote_messages_are_cut() -> None:
    """A huge remote message does not flood logs or run records."""
    error = error_for_status(400, _body("BadArgument", "x" * 10_000), method="GET", url=URL)
    assert len(error.message) <= 500


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (TimeoutError(), TransientError, "Timeout"),
        (aiohttp.ServerTimeoutError("read"), TransientError, "Timeout"),
        (aiohttp.ServerDisconnectedError(), TransientError, "ConnectionError"),
        (aiohttp.ClientPayloadError("cut"), TransientError, "ConnectionError"),
        (aiohttp.InvalidURL("nope://"), PermanentError, "InvalidUrl"),
    ],
)
def test_exceptions_below_http(exc: BaseException, kind: type[AzureMLError], code: str) -> None:
    """Timeouts and dropped connections are transient; an invalid URL is permanent."""
    error = error_for_exception(exc, method="POST", url=URL, tenant_id="t")
    assert type(error) is kind
    assert error.code == code
    assert error.status is None
    assert error.tenant_id == "t"
