"""Pure batch scoring (PROTOCOL.md §8): a CSV of rows in, the scored dataset out.

The scored dataset holds every input column, in the input's order and with its cells as
given (a label column passes through), followed by Score Model's columns: ``Scored Labels``
and, for binary classification, ``Scored Probabilities`` — the cells RRS answers for the same
rows. It is written as ``.csv``, ``.tsv`` or ``.arff`` by the output blob's extension.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from emulator.training import Model, TrainingError, parse_table


def require_columns(model: Model, columns: Sequence[str]) -> None:
    """Raise ``TrainingError`` naming the input columns ``model`` needs that are missing."""
    missing = [c for c in model.features if c not in columns]
    if missing:
        raise TrainingError(f"Columns not found in the input: {', '.join(missing)}.")


def score_dataset(model: Model, data: bytes | str, extension: str) -> bytes:
    """Score every row of a CSV with ``model``; the scored dataset in ``extension``'s format."""
    columns, rows = parse_table(data)
    require_columns(model, columns)
    scored = model.score(rows)
    header = [*columns, *model.scored_columns()]
    table = [
        [row.get(c) or "" for c in columns] + cells for row, cells in zip(rows, scored, strict=True)
    ]
    if extension == ".arff":
        return _arff(header, table)
    out = io.StringIO()
    delimiter = "\t" if extension == ".tsv" else ","
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(table)
    return out.getvalue().encode()


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _arff_text(cell: str) -> str:
    escaped = cell.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _arff(header: list[str], table: list[list[str]]) -> bytes:
    """ARFF: a NUMERIC attribute where every non-empty cell is a number, else STRING."""
    numeric = [all(_is_number(row[i]) for row in table if row[i] != "") for i in range(len(header))]
    lines = ["@RELATION scored", ""]
    lines += [
        f"@ATTRIBUTE {_arff_text(name)} {'NUMERIC' if is_num else 'STRING'}"
        for name, is_num in zip(header, numeric, strict=True)
    ]
    lines += ["", "@DATA"]
    for row in table:
        cells = [
            "?" if cell == "" else cell if is_num else _arff_text(cell)
            for cell, is_num in zip(row, numeric, strict=True)
        ]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()
