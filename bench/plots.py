"""PNG plots of benchmark results, for the curves in docs/BENCHMARKS.md.

Needs matplotlib, which only the benchmarks use: ``make bench`` installs it (the ``bench``
extra). Each subcommand reads what a benchmark script wrote and writes one PNG:

- ``b1 TIMELINE.json OUT.png [--cap 200 --duration 5]``: from ``fleet_makespan.py --timeline``,
  BES jobs running and runs deployed over time, against the ideal waves.
- ``b3 RESULTS.jsonl OUT.png``: CPU share of one core over the window, one line per B3 result
  line (``inflight_capacity.py`` output) in the file.
- ``b6 RESULTS.jsonl OUT.png``: each onboarding's latency, one series per B6 result line
  (``onboarding_during_bulk.py`` output), against the 2 s target.
- ``b8 TIMELINES.json OUT.png``: from ``bulk_order.py --timeline``, BES jobs running and
  runs deployed over time in the FIFO night and the longest-first night, against the lower
  bound max(total work / cap, longest job).
- ``b9 RESULTS.jsonl OUT.png``: the scale curve from ``scale_curve.py`` result lines (sizes
  of every line in the file, in order): latencies, Redis bytes per tenant, worker RSS and
  CPU per run against the fleet size, log-log, with a line of slope 1 (linear growth).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend is chosen before pyplot loads
from matplotlib.ticker import MaxNLocator

Timeline = list[dict[str, float]]


def result_lines(path: Path, bench: str) -> Iterator[dict[str, Any]]:
    """The JSON result lines of one benchmark in a file of mixed output."""
    for line in path.read_text().splitlines():
        if line.startswith("{") and f'"bench": "{bench}' in line:
            yield json.loads(line)


def count_between(timeline: Timeline, start: str, end: str, t: float) -> int:
    """How many runs were past ``start`` and not yet past ``end`` at time ``t``."""
    return sum(1 for run in timeline if run.get(start, math.inf) <= t < run.get(end, math.inf))


def ideal_deployed(t: float, runs: int, cap: int, duration: float) -> int:
    """Runs done at time ``t`` if every wave of ``cap`` jobs took exactly ``duration``."""
    return min(runs, int(t // duration) * cap)


def b1(timeline_path: Path, out: Path, cap: int, duration: float) -> None:
    """BES jobs running and runs deployed over time, against the ideal."""
    timeline: Timeline = json.loads(timeline_path.read_text())
    end = max(run.get("succeeded", 0.0) for run in timeline)
    ticks = [i * 0.1 for i in range(int(end / 0.1) + 2)]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    running = [count_between(timeline, "training", "evaluating", t) for t in ticks]
    top.plot(ticks, running, label="runs in training (job started, its end not yet handled)")
    top.axhline(cap, color="black", linestyle="--", linewidth=1, label=f"cap {cap}")
    top.set_ylabel("jobs")
    top.legend(loc="lower center")
    done = [count_between(timeline, "succeeded", "never", t) for t in ticks]
    ideal = [ideal_deployed(t, len(timeline), cap, duration) for t in ticks]
    bottom.plot(ticks, done, label=f"runs deployed (makespan {end:.1f} s)")
    bottom.plot(ticks, ideal, color="black", linestyle="--", linewidth=1, label="ideal waves")
    bottom.set_xlabel("seconds since POST /v1/batches")
    bottom.set_ylabel("runs")
    bottom.legend(loc="upper left")
    figure.suptitle(f"B1: {len(timeline):,} tenants, cap {cap}, {duration:g} s jobs")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def b3(results: Path, out: Path) -> None:
    """CPU share of one core over the measuring window, one line per B3 result."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for result in result_lines(results, "B3 "):
        poll_max = result["args"]["poll_max"]
        polling = "default polling" if poll_max is None else f"poll_max {poll_max:g} s"
        samples = result["samples"]
        axes.plot(
            [s["t"] for s in samples],
            [s["cpu_share"] for s in samples],
            label=f"{polling}: {result['jobs_in_flight']:,} jobs in flight",
        )
    axes.axhline(0.20, color="black", linestyle="--", linewidth=1, label="target 0.20")
    axes.set_xlabel("seconds into the window")
    axes.set_ylabel("CPU share of one core")
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.set_title("B3: one worker, BES jobs in flight")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def b6(results: Path, out: Path) -> None:
    """Latency of each onboarding, one series per B6 result."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    highest = 2.0
    for result in result_lines(results, "B6 "):
        latencies = result["latencies_s"]
        reserve = result["args"]["reserve"]
        p99 = result["post_to_bes_started_s"]["p99"]
        highest = max([highest, *latencies])
        axes.plot(
            range(1, len(latencies) + 1),
            latencies,
            marker="o",
            label=f"interactive_reserve {reserve}: p99 {p99:.2f} s",
        )
    axes.axhline(2.0, color="black", linestyle="--", linewidth=1, label="target p99 2 s")
    axes.set_xlabel("onboarding (in order)")
    axes.set_ylabel("POST /v1/tenants -> BES job started (s)")
    axes.set_ylim(0, highest * 1.45)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper right")
    axes.set_title("B6: onboardings during a 10,000-tenant bulk retrain")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def b8(timelines_path: Path, out: Path) -> None:
    """Jobs running and runs deployed over time, FIFO against longest first."""
    doc = json.loads(timelines_path.read_text())
    cap = int(doc["cap"])
    nights: dict[str, Timeline] = {"FIFO": doc["fifo"], "longest first": doc["longest_first"]}
    work = [run["job_s"] for run in doc["fifo"]]
    lower = max(sum(work) / cap, max(work))
    end = max(run.get("succeeded", 0.0) for timeline in nights.values() for run in timeline)
    ticks = [i * 0.25 for i in range(int(end / 0.25) + 2)]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for label, timeline in nights.items():
        running = [count_between(timeline, "training", "evaluating", t) for t in ticks]
        top.plot(ticks, running, label=label)
        makespan = max(run.get("succeeded", 0.0) for run in timeline)
        done = [count_between(timeline, "succeeded", "never", t) for t in ticks]
        bottom.plot(ticks, done, label=f"{label} (makespan {makespan:.1f} s)")
    top.axhline(cap, color="black", linestyle="--", linewidth=1, label=f"cap {cap}")
    top.set_ylabel("runs in training")
    top.legend(loc="lower left")
    for axes in (top, bottom):
        axes.axvline(lower, color="grey", linestyle=":", linewidth=1)
    bottom.plot([], [], color="grey", linestyle=":", label=f"lower bound {lower:.1f} s")
    bottom.set_xlabel("seconds since POST /v1/batches")
    bottom.set_ylabel("runs deployed")
    bottom.legend(loc="upper left")
    figure.suptitle(f"B8: {len(work):,} tenants, cap {cap}, lognormal job durations")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def b9_sizes(results: Path) -> list[dict[str, Any]]:
    """Every size measured by the B9 result lines of a file, smallest fleet first."""
    sizes = [size for result in result_lines(results, "B9 ") for size in result["sizes"]]
    return sorted(sizes, key=lambda size: int(size["tenants"]))


def linear_guide(axes: Any, xs: list[int], y0: float) -> None:
    """A dotted line through (xs[0], y0) growing in proportion to x."""
    axes.plot(
        [xs[0], xs[-1]],
        [y0, y0 * xs[-1] / xs[0]],
        color="grey",
        linestyle=":",
        linewidth=1,
        label="linear growth",
    )


def b9(results: Path, out: Path) -> None:
    """The scale curve: what reads, writes, memory and runs cost against the fleet size."""
    sizes = b9_sizes(results)
    xs = [int(size["tenants"]) for size in sizes]
    figure, ((lat, page), (mem, run)) = plt.subplots(2, 2, figsize=(11, 8))
    series = {
        "POST /v1/batches (all), to 202": [s["batch_post_s"] * 1000 for s in sizes],
        "GET /v1/fleet, cold (scan)": [s["batch_waiting"]["fleet_cold_ms"]["p50"] for s in sizes],
        "GET /v1/tenants?limit=100": [s["batch_waiting"]["tenant_table_ms"]["p50"] for s in sizes],
        "GET /v1/fleet, cached": [s["batch_waiting"]["fleet_cached_ms"]["p50"] for s in sizes],
    }
    if all("archive_pass" in s for s in sizes):
        series["an archiver pass (wall)"] = [s["archive_pass"]["wall_s"] * 1000 for s in sizes]
    for label, ys in series.items():
        lat.plot(xs, ys, marker="o", label=label)
    linear_guide(lat, xs, series["GET /v1/fleet, cold (scan)"][0])
    lat.set_ylabel("ms (p50; the batch waiting)")
    for part, label in (("page", "the three at once"), ("tenant", "GET tenant"), ("runs", "runs")):
        ys = [s["batch_waiting"]["tenant_page_ms"][part]["p50"] for s in sizes]
        page.plot(xs, ys, marker="o", label=f"tenant page: {label}, p50")
        p99 = [s["batch_waiting"]["tenant_page_ms"][part]["p99"] for s in sizes]
        page.plot(xs, p99, marker="x", linestyle="--", label=f"tenant page: {label}, p99")
    page.set_ylabel("ms (the batch waiting)")
    mem.plot(xs, [s["redis_bytes_per_tenant"] for s in sizes], marker="o", label="per tenant")
    mem.plot(
        xs, [s["redis_bytes_per_waiting_run"] for s in sizes], marker="o", label="per waiting run"
    )
    mem.set_ylabel("Redis used_memory, bytes")
    mem.set_ylim(bottom=0)
    run.plot(xs, [s["worker_cpu_ms_per_run"] for s in sizes], marker="o", label="workers, CPU")
    run.plot(xs, [s["cpu_ms_per_run"]["redis"] for s in sizes], marker="o", label="Redis, CPU")
    run.plot(
        xs, [max(s["worker_rss_peak_mb"]) for s in sizes], marker="s", label="worker RSS peak, MB"
    )
    run.set_ylabel("ms of CPU per run / MB")
    run.set_ylim(bottom=0)
    for axes in (lat, page):
        axes.set_yscale("log")
    for axes in (lat, page, mem, run):
        axes.set_xscale("log")
        axes.set_xlabel("tenants")
        axes.legend(fontsize="small")
    lat.set_title("fleet-wide requests and passes")
    page.set_title("a tenant's page")
    mem.set_title("Redis memory")
    run.set_title("a run, with the rest of the batch waiting")
    figure.suptitle("B9: scale curve")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def main() -> None:
    """Parse the subcommand and draw its PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    for name in ("b1", "b3", "b6", "b8", "b9"):
        command = sub.add_parser(name)
        command.add_argument("source", type=Path)
        command.add_argument("out", type=Path)
        if name == "b1":
            command.add_argument("--cap", type=int, default=200)
            command.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if args.figure == "b1":
        b1(args.source, args.out, args.cap, args.duration)
    elif args.figure == "b3":
        b3(args.source, args.out)
    elif args.figure == "b8":
        b8(args.source, args.out)
    elif args.figure == "b9":
        b9(args.source, args.out)
    else:
        b6(args.source, args.out)


if __name__ == "__main__":
    main()
