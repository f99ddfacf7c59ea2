"""A small hand-written SVG line chart, so benchmark curves need no plotting library.

``python bench/svgplot.py b3 RESULTS.jsonl OUT.svg`` draws B3's CPU share and polls/s over
the measuring window for every B3 result line in RESULTS.jsonl (one line per polling setting).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape

Series = dict[str, list[tuple[float, float]]]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
WIDTH, HEIGHT, PAD = 640, 360, 56


def line_chart(series: Series, title: str, xlabel: str, ylabel: str, target: float | None) -> str:
    """An SVG document with one polyline per series (and a dashed target line)."""
    points = [p for values in series.values() for p in values]
    x_max = max(x for x, _ in points) or 1.0
    y_max = max([y for _, y in points] + ([target * 1.2] if target else [])) * 1.1 or 1.0

    def sx(x: float) -> float:
        return PAD + x / x_max * (WIDTH - 2 * PAD)

    def sy(y: float) -> float:
        return HEIGHT - PAD - y / y_max * (HEIGHT - 2 * PAD)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="black"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="black"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 16}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text x="16" y="{HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {HEIGHT / 2})">{escape(ylabel)}</text>',
    ]
    for i in range(5):
        y = y_max * i / 4
        out.append(
            f'<text x="{PAD - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>'
            f'<line x1="{PAD}" y1="{sy(y):.1f}" x2="{WIDTH - PAD}" y2="{sy(y):.1f}" '
            'stroke="#ddd"/>'
        )
        x = x_max * i / 4
        out.append(
            f'<text x="{sx(x):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{x:.0f}</text>'
        )
    if target is not None:
        out.append(
            f'<line x1="{PAD}" y1="{sy(target):.1f}" x2="{WIDTH - PAD}" y2="{sy(target):.1f}" '
            'stroke="black" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - PAD}" y="{sy(target) - 4:.1f}" text-anchor="end">target</text>'
        )
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(
            f'<text x="{PAD + 10}" y="{PAD + 16 * index}" fill="{colour}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def b3_chart(results: Path) -> str:
    """CPU share of one core over the window, one line per B3 result."""
    series: Series = {}
    for line in results.read_text().splitlines():
        if '"B3 ' not in line:
            continue
        result = json.loads(line)
        poll_max = result["args"]["poll_max"] or 15
        name = f"poll_max {poll_max:g} s: {result['jobs_in_flight']} jobs in flight"
        series[name] = [(s["t"], s["cpu_share"]) for s in result["samples"]]
    return line_chart(
        series, "B3: one worker, BES jobs in flight", "seconds", "CPU share of one core", 0.20
    )


def main() -> None:
    """``b3 RESULTS.jsonl OUT.svg``."""
    kind, source, target = sys.argv[1:4]
    if kind != "b3":
        raise SystemExit(f"unknown chart {kind!r}")
    Path(target).write_text(b3_chart(Path(source)))


if __name__ == "__main__":
    main()
