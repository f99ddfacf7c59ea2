"""Stable groups of run failures: a failure class and the shape of the message.

Two runs fail "the same way" when their error codes agree, their messages name the same remote
error code (``BlobNotFound``, ``ModuleExecutionError``: the Azure ML detail code a BES job
reports first), and their messages read the same once the parts that differ from run to run
(ids, numbers, paths, URLs, quoted names) are replaced by placeholders. Pure functions.
"""

from __future__ import annotations

import re

SHAPE_WIDTH = 160
# A CamelCase word of two humps or more right before a colon: "BlobNotFound: ...".
_REMOTE_CODE = re.compile(r"\b([A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+):")
# Placeholders in the order they apply: each pattern sees the text the previous ones left.
_PLACEHOLDERS = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"()<>]+"), "<url>"),
    (re.compile(r"'[^']*'"), "<name>"),
    (re.compile(r'"[^"]*"'), "<name>"),
    (re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"), "<id>"),
    (re.compile(r"(?<![\w<])[\w.-]*(?:/[\w.-]+)+/?"), "<path>"),
    (re.compile(r"(?<![\w<])-?\d+(?:\.\d+)?(?![\w>])"), "<n>"),
)


def remote_code(message: str | None) -> str | None:
    """The first remote error code a message names (``BlobNotFound: ...``), if any."""
    found = _REMOTE_CODE.search(message or "")
    return found[1] if found else None


def failure_class(error_code: str | None, message: str | None) -> str:
    """The run's error code, with the remote code its message names: ``bes_Failed/BlobNotFound``."""
    code = error_code or "unknown"
    remote = remote_code(message)
    return f"{code}/{remote}" if remote else code


def message_shape(message: str | None) -> str:
    """``message`` on one line with run-specific parts replaced by placeholders, cut short."""
    shape = " ".join((message or "no reason recorded").split())
    for pattern, placeholder in _PLACEHOLDERS:
        shape = pattern.sub(placeholder, shape)
    return shape if len(shape) <= SHAPE_WIDTH else shape[: SHAPE_WIDTH - 1] + "…"
