// SVG charts: runs over time (stacked bars), a batch's run timeline and a tenant's metric history.

import { s } from "./app.js";
import { fmtHourMinute, fmtTime } from "./time.js";

export const STATE_COLOURS = {
  queued: "#9aa5b1",
  waiting_slot: "#f0b429",
  submitting: "#7cc4fa",
  training: "#2680c2",
  evaluating: "#8b5cf6",
  staging: "#b197fc",
  scoring: "#0b7285",
  deploying: "#6d28d9",
  succeeded: "#27ab83",
  rejected: "#e8710a",
  failed: "#d64545",
  cancelled: "#616e7c",
};
const ORDER = Object.keys(STATE_COLOURS);
const TERMINAL = ["succeeded", "rejected", "failed", "cancelled"];

// Runs created per bucket, stacked by state. The buckets span only the part of the window
// that has runs (the API picks their width), so a burst of runs is spread over the chart
// instead of standing as one bar at its right edge. Axis times are in the dashboard's zone.
export function activityChart(activity, { width = 1150, height = 170 } = {}) {
  const { buckets, bucket_seconds: seconds } = activity;
  const pad = { left: 40, right: 8, top: 10, bottom: 24 };
  const totals = buckets.map((b) => Object.values(b.counts).reduce((a, c) => a + c, 0));
  const max = niceMax(Math.max(1, ...totals));
  const inner = width - pad.left - pad.right;
  const barW = inner / Math.max(1, buckets.length);
  const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": `runs per ${widthName(seconds)} by state`,
    "data-test": "activity",
    "data-buckets": buckets.length,
    "data-bucket-seconds": seconds,
    "data-max": max,
  });
  for (const v of max % 2 === 0 ? [0, max / 2, max] : [0, max]) {
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: v ? "grid" : "axis" }));
    svg.append(s("text", { x: pad.left - 5, y: y(v) + 4, class: "tick end" }, String(v)));
  }
  const every = Math.max(1, Math.ceil(buckets.length / 10));
  buckets.forEach((bucket, i) => {
    let base = 0;
    const x = pad.left + i * barW;
    const start = Date.parse(bucket.start);
    const group = s("g", { class: "bar", "data-start": bucket.start, "data-total": totals[i] });
    group.append(s("title", {}, `${fmtTime(start)} + ${widthName(seconds)}: ${totals[i]} runs${totals[i] ? ` (${Object.entries(bucket.counts).map(([k, n]) => `${n} ${k}`).join(", ")})` : ""}`));
    for (const state of ORDER) {
      const n = bucket.counts[state] || 0;
      if (!n) continue;
      group.append(s("rect", { x: x + 1, width: Math.max(1, barW - 2), y: y(base + n), height: y(base) - y(base + n), fill: STATE_COLOURS[state] }));
      base += n;
    }
    svg.append(group);
    if (i % every === 0) {
      svg.append(s("text", { x: x + barW / 2, y: height - 7, class: "tick middle" }, fmtHourMinute(start, seconds < 60)));
    }
  });
  return svg;
}

// "10 s", "2 min", "1 h": the width of a bucket.
export function widthName(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${seconds / 60} min`;
  return `${seconds / 3600} h`;
}

// The smallest of 1, 2, 5 times a power of ten at or above ``value``, so the axis reads well.
function niceMax(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

// One row per run: waiting (queued, waiting for a slot), training (submit to evaluation),
// scoring on held-out rows (holdout mode), finishing (evaluating, deploying), with the outcome
// marked at the end; long rows are stragglers.
export function timeline(runs, { width = 960, start, now = Date.now() } = {}) {
  const pad = { left: 8, right: 8, top: 22, bottom: 8 };
  const rowH = runs.length > 300 ? 2 : runs.length > 60 ? 5 : 12;
  const height = pad.top + pad.bottom + rowH * Math.max(1, runs.length);
  const t = (iso) => (iso ? Date.parse(iso) : null);
  const begin = start ? Date.parse(start) : Math.min(...runs.map((r) => t(r.created_at)));
  const ends = runs.map((r) => endOf(r) ?? now);
  const finish = Math.max(begin + 1000, ...ends);
  const x = (ms) => pad.left + ((width - pad.left - pad.right) * (ms - begin)) / (finish - begin);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart timeline", role: "img", "aria-label": "timeline of runs" });
  const span = (finish - begin) / 1000;
  const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].find((x) => span / x <= 8) || 7200;
  for (let sec = 0; sec <= span; sec += step) {
    const at = x(begin + sec * 1000);
    svg.append(s("line", { x1: at, x2: at, y1: pad.top - 4, y2: height - pad.bottom, class: "grid" }));
    svg.append(s("text", { x: at, y: 14, class: `tick ${sec === 0 ? "" : "middle"}` }, `${sec < 60 || step < 60 ? `${+sec.toFixed(1)} s` : `${Math.round(sec / 60)} min`}`));
  }
  runs.forEach((run, i) => {
    const y = pad.top + i * rowH;
    const p = run.phases;
    const created = t(run.created_at);
    const started = t(p.submitting) ?? t(p.training);
    const trained = t(p.evaluating) ?? t(p.deploying);
    // Holdout mode: staging the candidate and scoring both models, between evaluating and
    // deploying.
    const staged = t(p.staging) ?? t(p.scoring);
    const deploying = t(p.deploying);
    const end = endOf(run) ?? now;
    const segments = [
      [created, started ?? end, p.waiting_slot ? "waiting_slot" : "queued"],
      [started, trained ?? end, "training"],
      ...(staged === null
        ? [[trained, end, "deploying"]]
        : [[trained, staged, "deploying"], [staged, deploying ?? end, "scoring"], [deploying, end, "deploying"]]),
    ];
    const row = s("a", { href: `#/run/${run.id}`, class: "row", "data-run": run.id });
    row.append(s("title", {}, `${run.tenant_id}: ${run.state}, ${(((end - created) / 1000) || 0).toFixed(1)} s from ${fmtTime(created)}`));
    for (const [from, to, kind] of segments) {
      if (from === null || to === null || to < from) continue;
      row.append(s("rect", { x: x(from), y, width: Math.max(1, x(to) - x(from)), height: Math.max(1, rowH - 1), fill: STATE_COLOURS[kind] }));
    }
    if (TERMINAL.includes(run.state)) {
      row.append(s("rect", { x: x(end) - 1, y, width: 3, height: Math.max(1, rowH - 1), fill: STATE_COLOURS[run.state], class: "end" }));
    }
    svg.append(row);
  });
  return svg;
}

export function endOf(run) {
  for (const state of TERMINAL) if (run.phases[state]) return Date.parse(run.phases[state]);
  return null;
}

// Gate metric per run version: deployed (filled), rejected (hollow), rollback (diamond),
// rolled back (ringed), the serving model (large ring); deployed versions joined by a line.
export function metricChart(points, { width = 560, height = 230, metric = "" } = {}) {
  const pad = { left: 52, right: 18, top: 16, bottom: 26 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": `${metric} per version`, "data-test": "metric-chart" });
  if (!points.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, class: "tick middle" }, "no evaluated versions yet"));
    return svg;
  }
  const values = points.map((p) => p.value);
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-6) [lo, hi] = [lo - 0.05, hi + 0.05];
  const margin = (hi - lo) * 0.12;
  [lo, hi] = [lo - margin, hi + margin];
  const seqs = points.map((p) => p.seq);
  const [first, last] = [Math.min(...seqs), Math.max(...seqs)];
  const x = (seq) => pad.left + (last === first ? (width - pad.left - pad.right) / 2 : ((width - pad.left - pad.right) * (seq - first)) / (last - first));
  const y = (v) => pad.top + ((height - pad.top - pad.bottom) * (hi - v)) / (hi - lo);
  for (let i = 0; i <= 4; i += 1) {
    const v = lo + ((hi - lo) * i) / 4;
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y(v) + 4, class: "tick end" }, v.toFixed(3)));
  }
  const deployed = points.filter((p) => p.kind !== "rejected");
  if (deployed.length > 1) {
    svg.append(s("polyline", { points: deployed.map((p) => `${x(p.seq)},${y(p.value)}`).join(" "), class: "deployed-line" }));
  }
  for (const p of points) {
    const cx = x(p.seq);
    const cy = y(p.value);
    const g = s("g", { class: `point ${p.kind}`, "data-seq": p.seq, "data-kind": p.kind, "data-value": p.value.toFixed(4) });
    g.append(s("title", {}, `v${p.seq} ${p.kind}${p.serving ? " (serving)" : ""}: ${p.value.toFixed(4)}`));
    if (p.kind === "rollback") {
      g.append(s("path", { d: `M ${cx} ${cy - 7} L ${cx + 7} ${cy} L ${cx} ${cy + 7} L ${cx - 7} ${cy} Z` }));
    } else {
      g.append(s("circle", { cx, cy, r: 5.5 }));
    }
    if (p.rolledBack) g.append(s("circle", { cx, cy, r: 9, class: "rolled-back-ring" }));
    if (p.serving) g.append(s("circle", { cx, cy, r: 12, class: "serving-ring", "data-test": "serving" }));
    g.append(s("text", { x: cx, y: height - 6, class: "tick middle" }, `v${p.seq}`));
    svg.append(g);
  }
  return svg;
}

// Champion and challenger on the same rows, one pair per version: the deployed model (hollow
// ring) and the candidate (filled dot: deployed green, rejected orange) joined by a line, the
// candidate's bootstrap interval as a whisker. The axis spans the values shown.
export function pairedChart(pairs, { width = 560, height = 230, metric = "" } = {}) {
  const pad = { left: 52, right: 18, top: 16, bottom: 40 };
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart paired", role: "img", "aria-label": `${metric}: deployed model and candidate on the same rows, per version`, "data-test": "paired-chart" });
  if (!pairs.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, class: "tick middle", "data-test": "no-pairs" }, "no version judged on held-out rows yet"));
    return svg;
  }
  const values = pairs.flatMap((p) => [p.champion, p.challenger, p.low, p.high]).filter((v) => typeof v === "number");
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-6) [lo, hi] = [lo - 0.05, hi + 0.05];
  const margin = (hi - lo) * 0.12;
  [lo, hi] = [lo - margin, hi + margin];
  // Tick labels with as many decimals as the span needs, and room on the left for them.
  const digits = hi - lo >= 20 ? 1 : hi - lo >= 2 ? 2 : 3;
  const ticks = [0, 1, 2, 3, 4].map((i) => lo + ((hi - lo) * i) / 4);
  pad.left = Math.max(40, 12 + 7 * Math.max(...ticks.map((v) => v.toFixed(digits).length)));
  const slot = (width - pad.left - pad.right) / pairs.length;
  const y = (v) => pad.top + ((height - pad.top - pad.bottom) * (hi - v)) / (hi - lo);
  for (const v of ticks) {
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y(v) + 4, class: "tick end" }, v.toFixed(digits)));
  }
  const gap = Math.min(14, slot / 5);
  pairs.forEach((p, i) => {
    const mid = pad.left + slot * (i + 0.5);
    const g = s("g", { class: `pair ${p.accepted ? "accepted" : "rejected"}`, "data-seq": p.seq, "data-run": p.runId, "data-champion": p.champion ?? "", "data-challenger": p.challenger, "data-low": p.low ?? "", "data-high": p.high ?? "", "data-accepted": String(p.accepted) });
    const change = p.champion === null ? "no deployed model before" : `deployed model ${p.champion.toFixed(4)}, change ${(p.challenger - p.champion).toFixed(4)}`;
    g.append(s("title", {}, `v${p.seq} on ${p.rows} held-out rows: candidate ${p.challenger.toFixed(4)} (${p.accepted ? "deployed" : "rejected"}), ${change}${p.low !== null ? `; interval ${p.low.toFixed(4)} to ${p.high.toFixed(4)}` : ""}`));
    const cx = p.champion === null ? mid : mid + gap;
    if (p.champion !== null) {
      g.append(s("line", { x1: mid - gap, x2: cx, y1: y(p.champion), y2: y(p.challenger), class: "pair-line" }));
      g.append(s("circle", { cx: mid - gap, cy: y(p.champion), r: 5.5, class: "champion", "data-test": "champion" }));
    }
    if (p.low !== null && p.high !== null) {
      const whisker = s("g", { class: "whisker", "data-test": "whisker", "data-y-low": y(p.low).toFixed(2), "data-y-high": y(p.high).toFixed(2) });
      whisker.append(s("line", { x1: cx, x2: cx, y1: y(p.low), y2: y(p.high) }));
      for (const v of [p.low, p.high]) whisker.append(s("line", { x1: cx - 5, x2: cx + 5, y1: y(v), y2: y(v) }));
      g.append(whisker);
    }
    g.append(s("circle", { cx, cy: y(p.challenger), r: 6, class: "challenger", "data-test": "challenger" }));
    g.append(s("text", { x: mid, y: height - 22, class: "tick middle" }, `v${p.seq}`));
    g.append(s("text", { x: mid, y: height - 8, class: "tick middle" }, `${p.rows} rows`));
    svg.append(g);
  });
  return svg;
}
