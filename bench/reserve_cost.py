"""B1 without and with the default interactive reserve, then B6 at default settings, back to back.

The reserve's cost to bulk throughput is the ratio of B1's two makespans, measured minutes
apart on the same machine (its load moves the absolute figures, less their ratio); B6 then
says whether the default reserve keeps onboardings during a bulk retrain under 2 s at p99.
Each benchmark runs as its own process on its own stack; their JSON lines are printed as they
come, then one summary line. Usage:
``.venv/bin/python bench/reserve_cost.py [--quick]`` (full: B1 2,000 tenants at a cap of 200,
B6 10,000 bulk tenants and 20 onboardings; quick: their ``--quick`` sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> dict[str, Any]:
    """Run one benchmark script; its JSON result line (also echoed)."""
    argv = [sys.executable, str(HERE / script), *args]
    print(f"== {' '.join(argv[1:])} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    line = done.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    result: dict[str, Any] = json.loads(line)
    return result


def main() -> None:
    """Run the three in order; print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the scripts' --quick sizes")
    args = parser.parse_args()
    size = ["--quick"] if args.quick else []
    without = run("fleet_makespan.py", *size, "--reserve", "0")
    default = run("fleet_makespan.py", *size)
    b6 = run("onboarding_during_bulk.py", *size)
    summary = {
        "bench": "reserve cost",
        "b1_makespan_s": {"reserve_0": without["makespan_s"], "default": default["makespan_s"]},
        "b1_default_reserve": default["interactive_reserve"],
        "b1_ratio_to_ideal": {"reserve_0": without["ratio"], "default": default["ratio"]},
        "b1_default_over_reserve_0": round(default["makespan_s"] / without["makespan_s"], 3),
        "b6_default_reserve": b6["interactive_reserve"],
        "b6_post_to_bes_started_s": b6["post_to_bes_started_s"],
        "load_avg_1m": [r["machine"]["load_avg_1m"] for r in (without, default, b6)],
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
