"""Log redaction: no secret part of a key, SAS, connection string or token is ever printed."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from worker.logs import configure_logging, redact_text
from worker.settings import LogConfig

ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SAS_SIG = "k3Y%2FsEcReT%3D"
SAS_URL = f"https://acct.blob.core.windows.net/c/m.ilearner?sv=2023-01-03&sr=b&sig={SAS_SIG}&sp=r"
CONNECTION = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};"
BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl"
API_KEY = "rtq_t_9f8e7d6c5b4a3f2e1d0c"
SECRET_PARTS = (ACCOUNT_KEY, SAS_SIG, BEARER, API_KEY, "hunter2")


@pytest.fixture
def log_output() -> io.StringIO:
    """Logging configured to render JSON into a buffer."""
    buffer = io.StringIO()
    configure_logging(LogConfig(format="json", level="DEBUG"), buffer)
    return buffer


def test_structlog_line_with_every_kind_of_secret_prints_none(log_output: io.StringIO) -> None:
    """A structlog event carrying an account key, SAS URL, connection string, bearer token."""
    structlog.get_logger("t").info(
        "bes.submitted",
        account_key=ACCOUNT_KEY,
        url=SAS_URL,
        inputs={"input1": {"ConnectionString": CONNECTION, "RelativeLocation": "c/a.csv"}},
        header=f"Bearer {BEARER}",
        note=f"issued {API_KEY}",
        redis="redis://:hunter2@10.0.0.1:6379/0",
    )
    line = log_output.getvalue()
    for secret in SECRET_PARTS:
        assert secret not in line
    event = json.loads(line)
    assert event["event"] == "bes.submitted"
    assert event["inputs"]["input1"]["RelativeLocation"] == "c/a.csv"
    assert "sv=2023-01-03" in event["url"]  # the non-secret parts stay readable


def test_stdlib_lines_of_libraries_are_redacted_too(log_output: io.StringIO) -> None:
    """arq and aiohttp log through the stdlib; their lines pass the same redaction."""
    logging.getLogger("arq.worker").info(
        "job failed: %s Authorization: Bearer %s", CONNECTION, BEARER
    )
    line = log_output.getvalue()
    assert ACCOUNT_KEY not in line
    assert BEARER not in line
    assert json.loads(line)["logger"] == "arq.worker"


def test_exception_text_is_redacted(log_output: io.StringIO) -> None:
    """A traceback whose message embeds a SAS URL does not print the signature."""
    try:
        raise RuntimeError(f"download failed for {SAS_URL}")
    except RuntimeError:
        structlog.get_logger("t").exception("blob.download_failed")
    assert SAS_SIG not in log_output.getvalue()
    assert "blob.download_failed" in log_output.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AccountKey=abc/def+==;Blob", "AccountKey=***;Blob"),
        ("https://h/p?sv=1&sig=zz%3D&se=2", "https://h/p?sv=1&sig=***&se=2"),
        ("authorization: Bearer abc.def-ghi", "authorization: Bearer ***"),
        ("plain words stay", "plain words stay"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    """The text patterns mask only the secret part."""
    assert redact_text(text) == expected


REQUEST_TRACE = (
    "Request URL: 'http://127.0.0.1:10000/devstoreaccount1/c/m.ilearner?sig=REDACTED'\n"
    "Request method: 'GET'\n"
    "Request headers:\n"
    "    'x-ms-range': 'bytes=0-33554431'\n"
    "    'Authorization': 'SharedKey devstoreaccount1:c2VjcmV0'\n"
    "No body was attached to the request"
)
RESPONSE_TRACE = "Response status: 206\nResponse headers:\n    'Content-Length': '1024'"
HTTP_TRACE_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


def lines_of(buffer: io.StringIO) -> list[dict[str, object]]:
    """Every rendered line as JSON (fails if a line is not a whole JSON event)."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_http_library_traces_below_warning_are_off_by_default() -> None:
    """At INFO the Azure SDK's per-request traces are dropped; its warnings still show."""
    buffer = io.StringIO()
    configure_logging(LogConfig(format="json", level="INFO"), buffer)
    logging.getLogger(HTTP_TRACE_LOGGER).info(REQUEST_TRACE)
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    logging.getLogger("azure.storage.blob").warning("retrying")
    assert [e["event"] for e in lines_of(buffer)] == ["retrying"]


def test_an_http_trace_at_debug_is_one_event_with_redacted_headers() -> None:
    """At DEBUG each request and response is one line with method, url, status and headers."""
    buffer = io.StringIO()
    configure_logging(LogConfig(format="json", level="DEBUG"), buffer)
    logging.getLogger(HTTP_TRACE_LOGGER).info(REQUEST_TRACE)
    logging.getLogger(HTTP_TRACE_LOGGER).info(RESPONSE_TRACE)
    request, response = lines_of(buffer)
    assert request["event"] == "http.request"
    assert request["method"] == "GET"
    assert str(request["url"]).startswith("http://127.0.0.1:10000/devstoreaccount1/c/")
    assert request["headers"] == {"x-ms-range": "bytes=0-33554431", "Authorization": "***"}
    assert request["note"] == "No body was attached to the request"
    assert response["event"] == "http.response"
    assert response["status"] == 206
    assert response["headers"] == {"Content-Length": "1024"}
    assert "c2VjcmV0" not in buffer.getvalue()


def test_line_breaks_in_other_values_are_folded(log_output: io.StringIO) -> None:
    """A multi-line error message is kept, its lines joined on one line."""
    structlog.get_logger("t").warning("blob.failed", error="Not found\nErrorCode:BlobNotFound")
    logging.getLogger("arq.worker").warning("first line\n  second line")
    step, stdlib = lines_of(log_output)
    assert step["error"] == "Not found | ErrorCode:BlobNotFound"
    assert stdlib["event"] == "first line | second line"
