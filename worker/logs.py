"""structlog configuration shared by the API and the worker, with secret redaction.

``configure_logging`` is called once by an entry point. Every line — structlog's own and the
stdlib lines of arq and aiohttp — passes through ``redact_secrets`` before it is rendered, so
account keys, SAS signatures, connection strings, bearer tokens and API keys never reach the
output, whatever code logged them.

Every event is one line: the multi-line HTTP traces of the Azure SDK become one
``http.request`` or ``http.response`` event with the headers as a field, and line breaks in
other values are folded. Third-party HTTP clients log only warnings and errors unless the
level is ``DEBUG``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.settings import LogConfig

MASK = "***"

# Field names whose values are secrets wherever they appear.
_SECRET_FIELD = re.compile(
    r"(?i)(^|_)(key|keys|token|secret|password|passwd|authorization|sas|connection_string|"
    r"api_key|account_key|primary|secondary)$"
)

# Secrets embedded in free text: (pattern, replacement).
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(AccountKey=)[^;\"'\s]+"), r"\1" + MASK),
    (re.compile(r"(?i)(SharedAccessSignature=)[^;\"'\s]+"), r"\1" + MASK),
    (re.compile(r"(?i)([?&]sig=)[^&\"'\s]+"), r"\1" + MASK),
    (re.compile(r"(?i)(\bBearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + MASK),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(@)"), r"\1" + MASK + r"\2"),
    (re.compile(r"\brtq_[A-Za-z0-9_-]{8,}"), "rtq_" + MASK),
    # A storage account key: 64 random bytes in base64 (88 characters ending '==').
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"), MASK),
)


# Every pattern above needs one of "=", "@", "rtq_" or "Bearer " in the text. Most log values
# (ids, states, event names) hold none, and one cheap test spares them seven regex passes; in
# profiles of busy workers redaction was a tenth of all CPU before this check.
_BEARER = re.compile(r"(?i)\bBearer\s")


def _may_hold_secret(text: str) -> bool:
    return "=" in text or "@" in text or "rtq_" in text or _BEARER.search(text) is not None


def redact_text(text: str) -> str:
    """Replace every embedded secret in ``text`` with a mask."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(name: str, value: Any) -> Any:
    if isinstance(value, str):
        if value and _SECRET_FIELD.search(name):
            return MASK
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(name, v) for v in value]
    if isinstance(value, BaseException):
        return redact_text(str(value))
    return value


# Loggers of HTTP client libraries: at INFO the Azure SDK logs every request and response.
HTTP_LIBRARY_LOGGERS = ("azure", "urllib3", "msal", "httpx", "httpcore")

# "Request URL: 'https://...'" or "Response status: 206"; header lines are "    'name': 'value'".
_TRACE_FIELD = re.compile(r"^(Request|Response) ([A-Za-z ]+?):\s*(.*)$")
_TRACE_HEADER = re.compile(r"^\s+'(?P<name>[^']*)': '(?P<value>.*)'$")


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text


def parse_http_trace(text: str) -> dict[str, Any] | None:
    """Fields of one multi-line Azure SDK HTTP trace, or ``None`` if ``text`` is not one."""
    lines = text.splitlines()
    first = _TRACE_FIELD.match(lines[0]) if lines else None
    if first is None:
        return None
    fields: dict[str, Any] = {"event": f"http.{first.group(1).lower()}"}
    headers: dict[str, str] = {}
    notes: list[str] = []
    for line in lines:
        header = _TRACE_HEADER.match(line)
        field = _TRACE_FIELD.match(line)
        if header is not None:
            headers[header["name"]] = header["value"]
        elif field is not None:
            name = field.group(2).lower().replace(" ", "_")
            value = _unquote(field.group(3))
            if name == "status" and value.isdigit():
                fields[name] = int(value)
            elif name != "headers":
                fields[name] = value
        elif line.strip():
            notes.append(line.strip())
    fields["headers"] = headers
    if notes:
        fields["note"] = " ".join(notes)
    return fields


def _fold(text: str) -> str:
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def one_line(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: make every event a single line.

    An Azure SDK HTTP trace becomes structured fields; any other value with line breaks has
    its lines joined with `` | ``. Tracebacks are rendered later and keep their lines.
    """
    event = event_dict.get("event")
    if isinstance(event, str) and "\n" in event:
        trace = parse_http_trace(event)
        if trace is not None:
            event_dict.update(trace)
    for name, value in event_dict.items():
        if isinstance(value, str) and "\n" in value:
            event_dict[name] = _fold(value)
    return event_dict


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field (by name and by content)."""
    for name in list(event_dict):
        event_dict[name] = _redact_value(name, event_dict[name])
    return event_dict


def _redact_rendered(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # Tracebacks are rendered into text late; mask what they carry too.
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = redact_text(exc)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        one_line,
        redact_secrets,
    ]


def wants_json(config: LogConfig, stream: TextIO) -> bool:
    """JSON unless asked for console, or ``auto`` and the stream is a terminal."""
    if config.format == "auto":
        return not stream.isatty()
    return config.format == "json"


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Configure structlog and route stdlib logging (arq, aiohttp) through the same renderer."""
    out = stream if stream is not None else sys.stderr
    renderer: Processor
    if wants_json(config, out):
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [structlog.processors.format_exc_info, _redact_rendered]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        final = []
    shared = _shared_processors()
    structlog.configure(
        # Drop lines below the level before the processors run: a filtered debug line
        # otherwise pays for context merging, redaction and timestamps first.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    # arq and aiohttp attach their own handlers in some entry points; let the root render them.
    for name in ("arq", "arq.worker", "arq.jobs", "aiohttp.access", "aiohttp.server"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    http_level = logging.DEBUG if config.level == "DEBUG" else logging.WARNING
    for name in HTTP_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(http_level)


def bind_context(**fields: Any) -> None:
    """Bind fields to every log line of the current task (step or request)."""
    structlog.contextvars.bind_contextvars(**fields)


def clear_context() -> None:
    """Drop the fields bound for the previous step or request."""
    structlog.contextvars.clear_contextvars()
