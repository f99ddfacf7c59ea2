"""Uploaded training CSVs: a streaming cell-by-cell check (pure) and the bounded body read.

``CsvCheck`` is fed the body chunk by chunk as it arrives and keeps only the current chunk's
lines: the header must hold the training service's columns; every row has the header's
width; the service's columns are never empty; numeric columns (configured, else those whose
first value is a number) hold finite numbers; text cells that would start a spreadsheet
formula (``=``, ``+``, ``-``, ``@`` followed by a non-digit) are refused; rows are bounded.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
import re
from collections.abc import Collection, Iterator, Sequence

from aiohttp import web

from producer.api.http import require_media_type
from producer.api.problems import Problem

MAX_COLUMNS = 4096
MAX_CELL_CHARS = 64 * 1024
CHUNK_BYTES = 64 * 1024
MAX_REPORTED = 10
_FORMULA_STARTS = frozenset("=+-@")
# Whole-column screens; a hit (or a quoted cell holding a newline) walks the column cell by cell.
_FORMULA = re.compile(r"^\s*(?:[=+\-@](?:[^0-9\n]|$)|[=@]$)", re.MULTILINE)
_BLANK = re.compile(r"^\s*$", re.MULTILINE)
_DECIMAL = r"[ \t]*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t]*"
_DECIMALS = re.compile(rf"{_DECIMAL}(?:\n{_DECIMAL})*")
_SHORT_NUMBER = 300
_SHOWN_CHARS = 24


class CsvError(ValueError):
    """The upload is not a usable training CSV; ``cells`` lists offending cells."""

    def __init__(self, message: str, cells: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(message)
        self.cells = list(cells)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _formula(text: str) -> bool:
    stripped = text.lstrip()
    return (
        len(stripped) >= 2 and stripped[0] in _FORMULA_STARTS and not stripped[1].isdigit()
    ) or (len(stripped) == 1 and stripped in ("=", "@"))


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


class CsvCheck:
    """Check a training CSV fed in chunks; ``close()`` returns its header or raises."""

    def __init__(
        self,
        required: Collection[str] = (),
        numeric: Collection[str] = (),
        max_rows: int = 2_000_000,
    ) -> None:
        self.required = required
        self.numeric = numeric
        self.max_rows = max_rows
        self.header: list[str] = []
        self.rows = 0
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._pending = ""
        self._lines = 0  # lines of the file checked so far
        self._kinds: list[bool | None] = []  # numeric? per column, once known
        self._needed: list[bool] = []
        self._issues: list[dict[str, object]] = []

    def feed(self, chunk: bytes) -> None:
        """Check the complete records in ``chunk`` (the rest waits for the next one)."""
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError:
            raise CsvError("the file is not UTF-8 text") from None
        if "\x00" in text:  # UTF-16 without a BOM, or binary data that happens to decode
            raise CsvError("the file holds NUL bytes; it is not UTF-8 text")
        self._records(self._pending + text, final=False)

    def close(self) -> list[str]:
        """Finish the check: the header, or ``CsvError`` listing the first offending cells."""
        try:
            rest = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvError("the file is not UTF-8 text") from None
        self._records(self._pending + rest, final=True)
        self._pending = ""
        if not self.header:
            raise CsvError("the file is empty; a header line and data rows are expected")
        if self.rows == 0:
            raise CsvError("the file has a header but no data rows")
        if self._issues:
            first = self._issues[0]
            raise CsvError(
                f"{len(self._issues)}{'+' if len(self._issues) >= MAX_REPORTED else ''} "
                f"offending cells; first: line {first['line']}, column {first['column']!r}: "
                f"{first['problem']}",
                self._issues,
            )
        return self.header

    def _records(self, text: str, *, final: bool) -> None:
        # A record ends at a newline outside quotes: an even count of quotes before it.
        cut = len(text) if final else self._record_end(text)
        self._pending = text[cut:]
        if len(self._pending) > MAX_CELL_CHARS * 4:
            raise CsvError(f"a line is longer than {MAX_CELL_CHARS * 4} characters")
        block = text[:cut]
        if not block:
            return
        first_line = self._lines
        reader = csv.reader(io.StringIO(block, newline=""), strict=True)
        rows = [row for row in reader if row]
        self._lines += reader.line_num
        skip = 0
        if rows and not self.header:
            self._header(rows.pop(0))
            skip = 1
        if rows:
            self._check(rows, block, first_line, skip)

    @staticmethod
    def _record_end(text: str) -> int:
        end = text.rfind("\n") + 1
        while end > 0 and text.count('"', 0, end) % 2:
            end = text.rfind("\n", 0, end - 1) + 1
        return end

    @staticmethod
    def _numbered(block: str, first_line: int, skip: int) -> Iterator[tuple[int, list[str]]]:
        """The data rows of ``block`` with their line numbers (the slow path only)."""
        reader = csv.reader(io.StringIO(block, newline=""), strict=True)
        rows = ((first_line + reader.line_num, row) for row in reader if row)
        yield from itertools.islice(rows, skip, None)

    def _check(self, rows: list[list[str]], block: str, first_line: int, skip: int) -> None:
        """Check a block of rows column by column; only a column that fails is walked."""
        before = self.rows
        self.rows += len(rows)
        if self.rows > self.max_rows:
            raise CsvError(f"the file has more than {self.max_rows} data rows")
        width = len(self.header)
        if any(len(row) != width for row in rows):
            line, row = next(
                (n, r) for n, r in self._numbered(block, first_line, skip) if len(r) != width
            )
            raise CsvError(f"line {line} has {len(row)} fields; the header has {width}")
        room = MAX_REPORTED - len(self._issues)
        if room <= 0:
            return
        found: list[dict[str, object]] = []
        for index, column in enumerate(zip(*rows, strict=True)):
            if self._column_ok(index, column):
                continue
            numbered = self._numbered(block, first_line, skip)
            for offset, (line, row) in enumerate(numbered, start=1):
                problem = self._cell(index, row[index])
                if problem:
                    where = {"line": line, "row": before + offset, "column": self.header[index]}
                    found.append({**where, "problem": problem})
                    if len(found) >= MAX_REPORTED:
                        break
        found.sort(key=lambda issue: (issue["row"], self.header.index(str(issue["column"]))))
        self._issues.extend(found[:room])

    def _column_ok(self, index: int, column: tuple[str, ...]) -> bool:
        """Whether every cell of ``column`` passes, decided by whole-column operations."""
        longest = max(map(len, column))
        if longest > MAX_CELL_CHARS:
            return False
        if self._kinds[index] is None:  # the first value of an unconfigured column decides
            self._kinds[index] = _number(column[0].strip()) is not None
        if self._kinds[index]:
            joined = "\n".join(column)
            # Plain decimals of fewer than 300 characters are finite floats: one regex pass.
            if _DECIMALS.fullmatch(joined) and longest < _SHORT_NUMBER:
                return True
            try:
                return math.isfinite(sum(map(float, column)))  # inf, nan or overflow: walk it
            except ValueError:
                return False
        joined = "\n".join(column)
        if _FORMULA.search(joined):
            return False
        return not (self._needed[index] and _BLANK.search(joined))

    def _header(self, row: list[str]) -> None:
        header = [name.strip() for name in row]
        if len(header) > MAX_COLUMNS:
            raise CsvError(f"the header has {len(header)} columns; at most {MAX_COLUMNS} allowed")
        if any(not name for name in header):
            raise CsvError("the header has an empty column name")
        duplicates = sorted({n for n in header if header.count(n) > 1})
        if duplicates:
            raise CsvError(f"the header repeats column names: {', '.join(duplicates[:5])}")
        missing = [c for c in self.required if c not in header]
        if missing:
            raise CsvError(
                "the CSV lacks columns the training service needs: " + ", ".join(missing[:20])
            )
        self.header = header
        self._kinds = [True if name in self.numeric else None for name in header]
        self._needed = [name in self.required for name in header]

    def _cell(self, index: int, cell: str) -> str | None:
        if len(cell) > MAX_CELL_CHARS:
            return f"longer than {MAX_CELL_CHARS} characters"
        text = cell.strip()
        if not text:
            return "empty (the training service needs this column)" if self._needed[index] else None
        kind = self._kinds[index]
        value = _number(text)
        if kind is None:  # the first value of an unconfigured column decides its kind
            kind = self._kinds[index] = value is not None
        if kind:
            if value is None:
                return f"{_shown(text)!r} is not a number (the column is numeric)"
            if not math.isfinite(value):
                return f"{_shown(text)!r} is not a finite number"
            return None
        if _formula(text):
            return f"{_shown(text)!r} would start a spreadsheet formula"
        return None


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


def _refused(exc: CsvError | csv.Error) -> Problem:
    cells = exc.cells if isinstance(exc, CsvError) else []
    return Problem(422, "Unprocessable Content", f"training data: {exc}", cells=cells)


async def read_upload(request: web.Request, limit: int, check: CsvCheck) -> bytes:
    """The CSV body, checked by ``check`` as it arrives: 415, 413 past ``limit``, 422."""
    require_media_type(request, CSV_MEDIA_TYPES.__contains__, "text/csv")
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Content Too Large", f"uploads may hold at most {limit} bytes")
    data = bytearray()
    try:
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            data.extend(chunk)
            if len(data) > limit:
                raise Problem(413, "Content Too Large", f"uploads may hold at most {limit} bytes")
            check.feed(chunk)
        check.close()
    except (CsvError, csv.Error) as exc:
        raise _refused(exc) from None
    return bytes(data)
