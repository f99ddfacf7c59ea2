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
