"""The holdout split: deterministic per seed, near its fraction, every row exactly once."""

from __future__ import annotations

import csv
import io

import pytest

from worker.holdout import Side, in_holdout, split_records, split_text

CSV = "a,b,label\n" + "".join(f"{i},{i * 2},{i % 7}\n" for i in range(2000))


def test_every_row_lands_on_exactly_one_side_and_the_header_on_both() -> None:
    """No row is lost or doubled; both outputs start with the header."""
    train, holdout, counts = split_text(CSV, seed="run-1", fraction=0.2)
    assert train.startswith("a,b,label\n")
    assert holdout.startswith("a,b,label\n")
    rows = train.splitlines()[1:] + holdout.splitlines()[1:]
    assert sorted(rows) == sorted(CSV.splitlines()[1:])
    assert (counts.train, counts.holdout) == (
        len(train.splitlines()) - 1,
        len(holdout.splitlines()) - 1,
    )
    assert 0.17 < counts.holdout / 2000 < 0.23


def test_the_same_seed_splits_the_same_way_and_another_seed_differently() -> None:
    """A repeated step writes the same blobs; another run holds out other rows."""
    assert split_text(CSV, seed="run-1", fraction=0.2) == split_text(
        CSV, seed="run-1", fraction=0.2
    )
    assert split_text(CSV, seed="run-1", fraction=0.2) != split_text(
        CSV, seed="run-2", fraction=0.2
    )


def test_quoted_fields_with_newlines_stay_one_record() -> None:
    """A cell holding a line break is one record, kept whole on its side."""
    text = 'note,label\n"two\nlines",1\nplain,0\n'
    sides = list(split_records(io.StringIO(text), seed="s", fraction=0.0))
    assert [side for side, _ in sides] == [Side.BOTH, Side.TRAIN, Side.TRAIN]
    assert list(csv.reader(io.StringIO(sides[1][1]))) == [["two\nlines", "1"]]


def test_fractions_at_the_ends_and_outside() -> None:
    """0 holds nothing out, 1 holds everything out, anything else outside [0, 1] is refused."""
    assert split_text(CSV, seed="s", fraction=0.0)[2].holdout == 0
    assert split_text(CSV, seed="s", fraction=1.0)[2].train == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        list(split_records(io.StringIO(CSV), seed="s", fraction=1.5))
    assert in_holdout("s", 3, 1.0)
    assert not in_holdout("s", 3, 0.0)


def test_blank_lines_are_not_rows_and_an_empty_file_has_no_records() -> None:
    """Blank lines are skipped; an empty input yields nothing."""
    assert split_text("h\n\n1\n\n", seed="s", fraction=0.0)[2].train == 1
    assert list(split_records(io.StringIO(""), seed="s", fraction=0.5)) == []
