"""Run every benchmark in bench/ one after another and print each one's JSON result.

``--quick`` (what ``make bench`` runs) uses small sizes, under about a minute each; without it
every script runs at the full sizes documented in docs/BENCHMARKS.md (tens of minutes in all).
``--only B1 B3`` picks figures. Scripts run as separate processes, so one failing does not
stop the rest; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (figure, script, quick arguments, full arguments)
BENCHMARKS: list[tuple[str, str, list[str], list[str]]] = [
    (
        "E1",
        "emulator_capacity.py",
        ["--jobs", "300", "--status-requests", "500", "--rrs-requests", "500"],
        [],
    ),
    ("B5", "api_enqueue.py", ["--retrains", "500", "--batch", "1000"], []),
    ("B1", "fleet_makespan.py", ["--quick"], []),
    ("B2", "orchestration_cost.py", ["--quick"], []),
    ("B3", "inflight_capacity.py", ["--quick"], []),
    ("B4", "sequential_baseline.py", ["--quick"], []),
    ("B6", "onboarding_during_bulk.py", ["--quick"], []),
    ("B7", "limit_client.py", ["--quick"], []),
    ("B8", "bulk_order.py", ["--quick"], []),
    ("B9", "scale_curve.py", ["--quick"], []),  # quick: 1,000 and 10,000 tenants, minutes
    ("U1", "upload_validation.py", ["--quick"], []),
]


def main() -> int:
    """Run the chosen benchmarks; 0 when all succeeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 1 min each)")
    parser.add_argument("--only", nargs="*", help="figures to run, e.g. B1 B3")
    args = parser.parse_args()
    failed = []
    for figure, script, quick, full in BENCHMARKS:
        if args.only and figure not in args.only:
            continue
        argv = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"== {figure}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        began = time.monotonic()
        result = subprocess.run(argv, check=False)
        elapsed = time.monotonic() - began
        print(f"== {figure}: exit {result.returncode} in {elapsed:.0f} s", file=sys.stderr)
        if result.returncode != 0:
            failed.append(figure)
    if failed:
        print(f"failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
