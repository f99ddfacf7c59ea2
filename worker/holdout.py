"""Splitting a tenant's training CSV into training rows and holdout rows, deterministically.

The champion/challenger gate scores both models on rows neither was trained on. Each data
row goes to the holdout when a hash of (the run's seed, the row's number) falls below the
holdout fraction, so the same run always splits the same way (a repeated step writes the
same blobs) and runs of different seeds split differently. With a time column, the newest
rows are held out instead. The split streams: a blob is read in chunks and each side is
written in blocks of deterministic ids, whatever the file's size; quoted fields may hold
newlines.
"""

from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import heapq
import io
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Side(StrEnum):
    """Where a record goes."""

    BOTH = "both"  # the header
    TRAIN = "train"
    HOLDOUT = "holdout"


@dataclass(frozen=True)
class SplitCounts:
    """Data rows written to each side."""

    train: int
    holdout: int


def in_holdout(seed: str, row: int, fraction: float) -> bool:
    """Whether data row ``row`` (0-based) of the run seeded ``seed`` is held out."""
    digest = hashlib.blake2b(f"{seed}:{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def _line(record: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(record)
    return out.getvalue()


def split_records(
    lines: Iterable[str], *, seed: str, fraction: float
) -> Iterator[tuple[Side, str]]:
    """Each CSV record of ``lines`` as (side, text): the header first, to both sides."""
    if not 0 <= fraction <= 1:
        raise ValueError("the holdout fraction lies between 0 and 1")
    records = csv.reader(lines)
    header = next(records, None)
    if header is None:
        return
    yield Side.BOTH, _line(header)
    for row, record in enumerate(r for r in records if any(cell.strip() for cell in r)):
        side = Side.HOLDOUT if in_holdout(seed, row, fraction) else Side.TRAIN
        yield side, _line(record)


def split_text(text: str, *, seed: str, fraction: float) -> tuple[str, str, SplitCounts]:
    """(training CSV, holdout CSV, counts) of a whole CSV text; for small files and tests."""
    train, holdout = io.StringIO(), io.StringIO()
    counts = {Side.TRAIN: 0, Side.HOLDOUT: 0}
    for side, line in split_records(io.StringIO(text), seed=seed, fraction=fraction):
        if side is not Side.HOLDOUT:
            train.write(line)
        if side is not Side.TRAIN:
            holdout.write(line)
        if side is not Side.BOTH:
            counts[side] += 1
    return (
        train.getvalue(),
        holdout.getvalue(),
        SplitCounts(counts[Side.TRAIN], counts[Side.HOLDOUT]),
    )


# --- streaming a blob through the split -------------------------------------------------------

BLOCK_BYTES = 4 * 1024 * 1024


class SplitError(ValueError):
    """Data that cannot be split as asked (no label column, no time column, no header)."""


class SplitStorage(Protocol):
    """What the streaming split needs of blob storage."""

    def chunks(self, path: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks."""
        ...

    async def stage_block(self, path: str, block_id: str, data: bytes) -> None:
        """Stage one block of a block blob."""
        ...

    async def commit_blocks(self, path: str, block_ids: Sequence[str]) -> None:
        """Make the blob exactly these staged blocks."""
        ...


def complete_prefix(text: str, quoted: bool = False) -> int:
    """Length of the longest prefix of ``text`` that ends a CSV record (0: none yet).

    A newline ends a record when an even number of quote characters precede it (an escaped
    quote is two quotes, so parity is all that matters); ``quoted`` says whether ``text``
    starts inside a quoted field.
    """
    end = len(text)
    while True:
        end = text.rfind("\n", 0, end)
        if end < 0:
            return 0
        if (text.count('"', 0, end) + quoted) % 2 == 0:
            return end + 1


async def records_of(storage: SplitStorage, path: str) -> AsyncIterator[list[str]]:
    """The CSV records of a blob (blank ones skipped), read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    buffer = ""
    async for chunk in storage.chunks(path):
        buffer += decoder.decode(chunk)
        cut = complete_prefix(buffer)
        if cut:
            for record in csv.reader(io.StringIO(buffer[:cut])):
                if any(cell.strip() for cell in record):
                    yield record
            buffer = buffer[cut:]
    buffer += decoder.decode(b"", final=True)
    for record in csv.reader(io.StringIO(buffer)):
        if any(cell.strip() for cell in record):
            yield record


class BlockWriter:
    """Writes one blob as deterministic blocks (a repeated split writes the same blob)."""

    def __init__(self, storage: SplitStorage, path: str) -> None:
        self.storage = storage
        self.path = path
        self.buffer = io.StringIO()
        self.size = 0
        self.ids: list[str] = []

    async def write(self, text: str) -> None:
        """Append ``text``; a full block is staged."""
        self.buffer.write(text)
        self.size += len(text)
        if self.size >= BLOCK_BYTES:
            await self._stage()

    async def _stage(self) -> None:
        block_id = base64.b64encode(f"block-{len(self.ids):08d}".encode()).decode()
        await self.storage.stage_block(self.path, block_id, self.buffer.getvalue().encode())
        self.ids.append(block_id)
        self.buffer = io.StringIO()
        self.size = 0

    async def close(self) -> None:
        """Stage what is left and commit the blob."""
        if self.size or not self.ids:
            await self._stage()
        await self.storage.commit_blocks(self.path, self.ids)


def _column(header: list[str], name: str, what: str) -> int:
    names = [" ".join(cell.split()).casefold() for cell in header]
    wanted = " ".join(name.split()).casefold()
    if wanted not in names:
        raise SplitError(f"the data has no {what} column {name!r}")
    return names.index(wanted)


def _time_key(cell: str) -> tuple[int, float, str]:
    # Numbers order as numbers, anything else (ISO timestamps) as text after them.
    try:
        return (0, float(cell), "")
    except ValueError:
        return (1, 0.0, cell.strip())


async def _newest_rows_threshold(
    storage: SplitStorage, path: str, column: str, fraction: float
) -> tuple[tuple[int, float, str], int] | None:
    """The (time key, row) from which on rows are the newest ``fraction`` (two reads; memory
    bounded by the holdout's keys)."""
    rows = -1
    index = 0
    async for record in records_of(storage, path):
        if rows < 0:
            index = _column(record, column, "time")
        rows += 1
    held = math.ceil(fraction * max(rows, 0))
    if held <= 0:
        return None
    newest: list[tuple[tuple[int, float, str], int]] = []
    row = -1
    async for record in records_of(storage, path):
        if row >= 0:
            key = (_time_key(record[index] if index < len(record) else ""), row)
            if len(newest) < held:
                heapq.heappush(newest, key)
            elif key > newest[0]:
                heapq.heapreplace(newest, key)
        row += 1
    return newest[0] if newest else None


async def split_blob(
    storage: SplitStorage,
    source: str,
    train_path: str,
    holdout_path: str,
    *,
    seed: str,
    fraction: float,
    label: str,
    time_column: str | None = None,
) -> SplitCounts:
    """Stream ``source`` into a training blob and a holdout blob; both get the header.

    Rows are held out by a seeded hash of their number (``in_holdout``), or with
    ``time_column`` the newest ``fraction`` of them (ties broken by row order). Raises
    ``SplitError`` when the label (or time) column is missing.
    """
    threshold = None
    if time_column is not None:
        threshold = await _newest_rows_threshold(storage, source, time_column, fraction)
    train, holdout = BlockWriter(storage, train_path), BlockWriter(storage, holdout_path)
    counts = {Side.TRAIN: 0, Side.HOLDOUT: 0}
    row = -1
    time_index = 0
    async for record in records_of(storage, source):
        line = _line(record)
        if row < 0:
            _column(record, label, "label")
            if time_column is not None:
                time_index = _column(record, time_column, "time")
            await train.write(line)
            await holdout.write(line)
            row = 0
            continue
        if threshold is not None:
            cell = record[time_index] if time_index < len(record) else ""
            held = (_time_key(cell), row) >= threshold
        else:
            held = time_column is None and in_holdout(seed, row, fraction)
        side = Side.HOLDOUT if held else Side.TRAIN
        await (holdout if held else train).write(line)
        counts[side] += 1
        row += 1
    if row < 0:
        raise SplitError("the data is empty (no header row)")
    await train.close()
    await holdout.close()
    return SplitCounts(counts[Side.TRAIN], counts[Side.HOLDOUT])
