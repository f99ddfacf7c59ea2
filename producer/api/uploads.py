"""Checks of uploaded training CSVs (pure) and the bounded read of an upload body."""

from __future__ import annotations

import csv

from aiohttp import web

from producer.api.http import require_media_type
from producer.api.problems import Problem

HEAD_BYTES = 64 * 1024
CHECKED_ROWS = 50
MAX_COLUMNS = 4096
CHUNK_BYTES = 64 * 1024


class CsvError(ValueError):
    """The upload is not a usable training CSV."""


def inspect_csv(head: bytes, *, complete: bool) -> list[str]:
    """The header of a CSV from its first bytes, after checking the first rows are consistent.

    ``complete`` says whether ``head`` is the whole file (else its last line may be cut).
    """
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(head) - 4:
            raise CsvError("the file is not UTF-8 text") from None
        text = head[: exc.start].decode("utf-8-sig")
    if "\x00" in text:  # UTF-16 without a BOM, or binary data that happens to decode
        raise CsvError("the file holds NUL bytes; it is not UTF-8 text")
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[:-1]
    rows = [row for row in csv.reader(lines[: CHECKED_ROWS + 1]) if row]
    if not rows:
        raise CsvError("the file is empty; a header line and data rows are expected")
    header = [name.strip() for name in rows[0]]
    if len(header) > MAX_COLUMNS:
        raise CsvError(f"the header has {len(header)} columns; at most {MAX_COLUMNS} are allowed")
    if any(not name for name in header):
        raise CsvError("the header has an empty column name")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise CsvError(f"the header repeats column names: {', '.join(duplicates[:5])}")
    if len(rows) < 2:
        raise CsvError("the file has a header but no data rows")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise CsvError(f"line {number} has {len(row)} fields; the header has {len(header)}")
    return header


# What clients label a CSV with: curl and most HTTP libraries send octet-stream for a file,
# browsers on some systems send the spreadsheet type for a .csv.
CSV_MEDIA_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/octet-stream",
        "application/vnd.ms-excel",
    }
)


async def read_upload(request: web.Request, limit: int) -> bytes:
    """The CSV body read in chunks: 415 when labelled otherwise, 413 past ``limit`` bytes."""
    require_media_type(request, CSV_MEDIA_TYPES.__contains__, "text/csv")
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Content Too Large", f"uploads may hold at most {limit} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        data.extend(chunk)
        if len(data) > limit:
            raise Problem(413, "Content Too Large", f"uploads may hold at most {limit} bytes")
    return bytes(data)


def columns_of(data: bytes) -> list[str]:
    """The checked header of an uploaded CSV (422 when it is not a usable CSV)."""
    try:
        return inspect_csv(data[:HEAD_BYTES], complete=len(data) <= HEAD_BYTES)
    except (CsvError, csv.Error) as exc:
        raise Problem(422, "Unprocessable Content", f"training data: {exc}") from None
