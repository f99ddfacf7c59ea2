"""Splitting a tenant's training CSV into training rows and holdout rows, deterministically.

The champion/challenger gate scores both models on rows neither was trained on. Each data
row goes to the holdout when a hash of (the run's seed, the row's number) falls below the
holdout fraction, so the same run always splits the same way (a repeated step writes the
same blobs) and runs of different seeds split differently. The split streams: records are
read and written one at a time, whatever the file's size; quoted fields may hold newlines.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


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
