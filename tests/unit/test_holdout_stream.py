"""The streaming split: the same blobs as the whole-text split, in chunks of any size,
deterministic blocks, the newest rows by a time column, and a missing label refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from worker.holdout import SplitError, complete_prefix, split_blob, split_text


class MemoryBlobs:
    """Blob storage in a dict, served in chunks of ``chunk`` bytes."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.blobs: dict[str, bytes] = {}
        self.staged: dict[tuple[str, str], bytes] = {}

    async def chunks(self, path: str) -> AsyncIterator[bytes]:
        data = self.blobs[path]
        for start in range(0, len(data), self.chunk):
            yield data[start : start + self.chunk]

    async def stage_block(self, path: str, block_id: str, data: bytes) -> None:
        self.staged[path, block_id] = data

    async def commit_blocks(self, path: str, block_ids: Sequence[str]) -> None:
        self.blobs[path] = b"".join(self.staged[path, i] for i in block_ids)


CSV = "a,note,y\n" + "".join(f'{i},"line {i}\nwith ""quotes""",{i % 5}\n' for i in range(500))


def split(blobs: MemoryBlobs, **options: object) -> tuple[str, str, tuple[int, int]]:
    """Split ``in.csv`` of ``blobs``; the two blobs' texts and counts."""
    counts = asyncio.run(
        split_blob(blobs, "in.csv", "t.csv", "h.csv", seed="r1", fraction=0.2, **options)  # type: ignore[arg-type]
    )
    return (
        blobs.blobs["t.csv"].decode(),
        blobs.blobs["h.csv"].decode(),
        (counts.train, counts.holdout),
    )


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_chunks_of_any_size_give_the_whole_text_split(chunk: int) -> None:
    """Quoted newlines and escaped quotes cross chunk borders unharmed."""
    blobs = MemoryBlobs(chunk)
    blobs.blobs["in.csv"] = CSV.encode()
    train, holdout, counts = split(blobs, label="y")
    expected = split_text(CSV, seed="r1", fraction=0.2)
    assert (train, holdout) == expected[:2]
    assert counts == (expected[2].train, expected[2].holdout)


def test_a_repeated_split_writes_the_same_blobs() -> None:
    """Deterministic rows and block ids: a crash and a retry change nothing."""
    blobs = MemoryBlobs(100)
    blobs.blobs["in.csv"] = CSV.encode()
    first = split(blobs, label="y")
    assert split(blobs, label="y") == first


def test_a_time_column_holds_out_the_newest_rows() -> None:
    """With a time column the holdout is the newest fraction of rows, whatever their order."""
    rows = [f"2026-01-{(i * 7) % 28 + 1:02d}T{i % 24:02d}:00,{i}" for i in range(100)]
    blobs = MemoryBlobs(50)
    blobs.blobs["in.csv"] = ("when,y\n" + "\n".join(rows) + "\n").encode()
    train, holdout, counts = split(blobs, label="y", time_column="when")
    assert counts == (80, 20)
    newest = min(line.split(",")[0] for line in holdout.splitlines()[1:])
    assert all(line.split(",")[0] <= newest for line in train.splitlines()[1:])


def test_a_missing_label_column_is_refused() -> None:
    """No label to measure against: the split says so (the run then falls back)."""
    blobs = MemoryBlobs(64)
    blobs.blobs["in.csv"] = CSV.encode()
    with pytest.raises(SplitError, match="label column 'target'"):
        split(blobs, label="target")


def test_a_record_ends_only_at_a_newline_outside_quotes() -> None:
    """The cut point of a chunk keeps an open quoted field for the next chunk."""
    assert complete_prefix('a,b\n1,"x\ny') == 4
    assert complete_prefix('a,b\n1,"x\ny"\n') == len('a,b\n1,"x\ny"\n')
    assert complete_prefix("no newline") == 0
