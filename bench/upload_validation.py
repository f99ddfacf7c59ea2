"""U1: cost of checking an uploaded training CSV cell by cell (producer/api/uploads.py).

Builds a bike-rental CSV of ``--megabytes`` MB (the emulator's generator, rows repeated),
feeds it to ``CsvCheck`` in the API's 64 KiB chunks with the training service's columns
required and numeric, and reports the best of ``--repeats`` runs in MB/s and the peak memory
the check allocated (tracemalloc; the file itself is not counted), beside the rate of a plain
``csv`` parse of the same bytes (what any check costs at least). Usage:
``.venv/bin/python bench/upload_validation.py [--megabytes 50] [--repeats 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
import tracemalloc

from common import emit

from emulator.datagen import bike_rental_csv
from producer.api.uploads import CHUNK_BYTES, CsvCheck

NUMERIC = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit"]


def build(megabytes: int) -> tuple[bytes, list[str]]:
    """A CSV of about ``megabytes`` MB and its header."""
    sample = bike_rental_csv("bench", 5000).encode()
    head, _, rows = sample.partition(b"\n")
    repeats = megabytes * 1_000_000 // len(rows) + 1
    return head + b"\n" + rows * repeats, head.decode().split(",")


def check_once(data: bytes, header: list[str], *, traced: bool = False) -> tuple[float, int, int]:
    """Seconds, data rows and (when ``traced``) peak traced bytes of one full check."""
    numeric = [c for c in header if c in NUMERIC or c in ("temp", "atemp", "hum", "windspeed")]
    view = memoryview(data)
    if traced:
        tracemalloc.start()
    began = time.perf_counter()
    check = CsvCheck(required=header, numeric=numeric, max_rows=10**8)
    for start in range(0, len(data), CHUNK_BYTES):
        check.feed(bytes(view[start : start + CHUNK_BYTES]))
    check.close()
    elapsed = time.perf_counter() - began
    peak = 0
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return elapsed, check.rows, peak


def parse_once(data: bytes) -> float:
    """Seconds to decode and split the same file with ``csv`` alone (the floor of any check)."""
    began = time.perf_counter()
    rows = sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows > 0
    return time.perf_counter() - began


def main() -> None:
    """Run the benchmark and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 MB, one run")
    args = parser.parse_args()
    megabytes, repeats = (10, 1) if args.quick else (args.megabytes, args.repeats)
    data, header = build(megabytes)
    runs = [check_once(data, header) for _ in range(repeats)]
    best = min(seconds for seconds, _, _ in runs)
    floor = min(parse_once(data) for _ in range(repeats))
    peak = check_once(data, header, traced=True)[2]  # timed apart: tracing slows it down
    emit(
        "upload_validation",
        {
            "bytes": len(data),
            "rows": runs[0][1],
            "columns": len(header),
            "seconds": round(best, 3),
            "mb_per_second": round(len(data) / 1_000_000 / best, 1),
            "peak_traced_kib": peak // 1024,
            "csv_parse_only_mb_per_second": round(len(data) / 1_000_000 / floor, 1),
        },
    )


if __name__ == "__main__":
    main()
