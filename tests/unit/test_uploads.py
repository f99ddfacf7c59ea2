"""The streaming cell-by-cell check of uploaded training CSVs (producer/api/uploads.py)."""

from __future__ import annotations

import pytest

from producer.api.uploads import CsvCheck, CsvError

GOOD = b"temp,season,cnt\n0.24,spring,187\n0.30,summer,201\n-1.5,-,3\n"


def check(data: bytes, chunk: int = 7, **options: object) -> list[str]:
    """Feed ``data`` in ``chunk``-byte pieces (boundaries land inside cells and quotes)."""
    checker = CsvCheck(**options)  # type: ignore[arg-type]  # test options are typed above
    for start in range(0, len(data), chunk):
        checker.feed(data[start : start + chunk])
    return checker.close()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_a_good_file_passes_whatever_the_chunking(chunk: int) -> None:
    assert check(GOOD, chunk, required=["temp", "cnt"]) == ["temp", "season", "cnt"]


def test_quoted_cells_may_hold_commas_quotes_and_newlines() -> None:
    data = b'name,cnt\n"a, ""b""\nc",1\nplain,2\n'
    assert check(data, 3) == ["name", "cnt"]


def test_formula_cells_are_refused_and_listed_by_line_and_column() -> None:
    data = b"cnt,note\n1,=cmd|' /C calc'!A0\n2,@SUM(1)\n3,+A1\n4,-x\n5,-5\n6,+7\n"
    with pytest.raises(CsvError) as caught:
        check(data)
    cells = caught.value.cells
    assert [(c["line"], c["column"]) for c in cells] == [
        (2, "note"),
        (3, "note"),
        (4, "note"),
        (5, "note"),
    ]
    assert all("formula" in str(c["problem"]) for c in cells)
    assert "first: line 2, column 'note'" in str(caught.value)


def test_text_and_non_finite_values_in_numeric_columns_are_refused() -> None:
    data = b"temp,cnt\n0.2,1\nwarm,2\n0.3,inf\n0.4,nan\n"
    with pytest.raises(CsvError) as caught:
        check(data)
    problems = [(c["row"], c["column"], str(c["problem"])) for c in caught.value.cells]
    assert problems[0][:2] == (2, "temp")
    assert "not a number" in problems[0][2]
    assert [p[:2] for p in problems[1:]] == [(3, "cnt"), (4, "cnt")]


def test_configured_numeric_columns_are_numeric_from_the_first_row() -> None:
    with pytest.raises(CsvError, match="not a number"):
        check(b"temp,cnt\nwarm,1\n", numeric=["temp"])


def test_required_columns_must_be_present_and_never_empty() -> None:
    with pytest.raises(CsvError, match="lacks columns the training service needs: cnt"):
        check(b"temp\n1\n", required=["temp", "cnt"])
    with pytest.raises(CsvError, match="empty"):
        check(b"temp,cnt\n1,\n", required=["cnt"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"a,b\n", "no data rows"),
        (b"a,b\n1,2\n3\n", "line 3 has 1 fields"),
        (b"a,a\n1,2\n", "repeats"),
        (b"\xff\xfe", "not UTF-8"),
        (b"a\x00b\n", "NUL"),
    ],
)
def test_unusable_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message):
        check(data)


def test_rows_are_bounded() -> None:
    with pytest.raises(CsvError, match="more than 2 data rows"):
        check(b"a\n1\n2\n3\n", max_rows=2)


def test_at_most_ten_cells_are_listed() -> None:
    data = b"a\n1\n" + b"x\n" * 50
    with pytest.raises(CsvError) as caught:
        check(data)
    assert len(caught.value.cells) == 10
    assert str(caught.value).startswith("10+ offending cells")


def test_lines_are_counted_past_blank_lines_and_quoted_newlines() -> None:
    data = b'\nnote,cnt\n"two\nlines",1\nok,2\n=bad,3\n'
    with pytest.raises(CsvError) as caught:
        check(data, 5)
    assert [(c["line"], c["row"], c["column"]) for c in caught.value.cells] == [(6, 3, "note")]


def test_offending_cells_are_listed_in_row_order_across_columns() -> None:
    data = b"a,b\n1,x\n1,y\nz,2\n" + b"1,ok\n" * 3
    with pytest.raises(CsvError) as caught:
        check(data, 1 << 20, numeric=["a"])
    assert [(c["row"], c["column"]) for c in caught.value.cells] == [(3, "a")]


def test_numbers_too_long_for_a_float_are_not_finite() -> None:
    """A 400-digit integer overflows to inf: refused although it is all digits."""
    with pytest.raises(CsvError, match="not a finite number"):
        check(b"a\n1\n" + b"9" * 400 + b"\n", numeric=["a"])
