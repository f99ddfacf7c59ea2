// The gate's decision on the run and tenant pages: the deployed model (champion) and the
// candidate (challenger) on the same held-out rows, the improvement's bootstrap interval,
// the reason, the evaluation mode and its note.

import { card, fmtNumber, h, link, table } from "./app.js";
import { pairedChart } from "./charts.js";

// Evaluate Model's metrics that are better when lower (the others retrainq measures are
// better when higher).
const LOWER_IS_BETTER = ["mean absolute error", "root mean squared error", "relative absolute error", "relative squared error", "average log loss", "negative log likelihood"];

const normal = (name) => name.toLowerCase().split(/\s+/).filter(Boolean).join(" ");

export function higherIsBetter(metric) {
  return !LOWER_IS_BETTER.includes(normal(metric || ""));
}

// The candidate's metric the improvement's interval allows: the deployed model's value moved
// by the interval (the interval is of the improvement, in the metric's better direction).
export function candidateRange(d) {
  const c = d && d.comparison;
  if (!c || typeof d.baseline !== "number" || typeof c.interval_low !== "number" || typeof c.interval_high !== "number") return null;
  return higherIsBetter(d.metric)
    ? [d.baseline + c.interval_low, d.baseline + c.interval_high]
    : [d.baseline - c.interval_high, d.baseline - c.interval_low];
}

// One version's pair for the chart: champion and challenger on the same rows (holdout only).
export function pairOf(run) {
  const d = run.decision;
  if (!d || d.evaluation !== "holdout" || !d.comparison || typeof d.value !== "number") return null;
  const range = candidateRange(d);
  return {
    seq: run.seq,
    runId: run.id,
    rows: d.comparison.holdout_rows,
    champion: typeof d.baseline === "number" ? d.baseline : null,
    challenger: d.value,
    low: range ? range[0] : null,
    high: range ? range[1] : null,
    accepted: d.accepted,
  };
}

const signed = (v, digits = 4) => (typeof v === "number" ? `${v >= 0 ? "+" : ""}${v.toFixed(digits)}` : "–");

// The mode a run is judged in, in words (its note when it fell back to the reported figures).
export function evaluationText(run) {
  const d = run.decision;
  const mode = run.evaluation || (d && d.evaluation);
  if (!mode) return "not split yet";
  if (mode === "holdout") {
    const split = run.holdout;
    if (!split) return "held-out rows (holdout)";
    const how = split.time_column ? `the newest ${Math.round(split.fraction * 100)} % by ${split.time_column}` : `${Math.round(split.fraction * 100)} % of the rows, seeded by the run`;
    return `held-out rows (holdout): ${split.holdout_rows} rows held out (${how}), the candidate trained on the other ${split.train_rows}; label ${split.label}`;
  }
  return "reported figures (reported): each model's own Evaluate Model result, on different rows";
}

export function evaluationNote(run) {
  return run.evaluation_note || (run.decision && run.decision.note) || "";
}

function field(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

// The run page's gate card: the verdict and reason, the mode, both models on the same rows
// with the improvement's interval, and the pair as a dot plot; a run without a decision says
// why (a failed one: not reached).
export function decisionCard(run, notice) {
  const d = run.decision;
  const note = evaluationNote(run);
  const mode = [
    ...field("evaluation", h("span", { "data-test": "evaluation", "data-mode": run.evaluation || (d && d.evaluation) || "" }, evaluationText(run))),
    ...(note ? field("note", h("span", { "data-test": "evaluation-note" }, note)) : []),
  ];
  if (!d) return card("Gate decision", h("p", { class: "muted", "data-test": "no-decision" }, notice), h("dl", { class: "fields" }, ...mode));
  const c = d.comparison;
  const holdout = d.evaluation === "holdout" && c;
  const pair = holdout ? pairOf(run) : null;
  const interval = c && typeof c.interval_low === "number"
    ? ` (${Math.round((c.confidence || 0.9) * 100)} % interval ${signed(c.interval_low)} to ${signed(c.interval_high)}, ${c.resamples} resamples)`
    : "";
  return card("Gate decision",
    h("dl", { class: "fields", "data-test": "decision" },
      ...field("verdict", h("strong", { class: d.accepted ? "ok" : "bad", "data-test": "verdict" }, d.accepted ? "accepted" : "rejected")),
      ...field("reason", h("span", { "data-test": "reason" }, d.reason)),
      ...mode,
      ...field("metric", d.metric),
      ...field(holdout ? "deployed model, on the held-out rows" : "deployed model, as reported", h("span", { "data-test": "champion-value" }, c && !c.champion_metrics ? "none deployed" : fmtNumber(d.baseline, 4))),
      ...field(holdout ? "candidate, on the same rows" : "candidate, as reported", h("span", { "data-test": "challenger-value" }, fmtNumber(d.value, 4))),
      ...(holdout && typeof c.difference === "number" ? field("improvement", h("span", { "data-test": "improvement" }, `${signed(c.difference)}${interval}`), h("div", { class: "muted small" }, "positive: the candidate is better")) : []),
      ...(holdout && typeof c.allowed_regression === "number" ? field("allowed regression", fmtNumber(c.allowed_regression, 4)) : []),
      ...(holdout ? field("holdout", h("span", { "data-test": "holdout-rows" }, `${c.holdout_rows} rows`), " ", h("span", { class: "mono small" }, c.holdout_path)) : []),
    ),
    pair ? pairedChart([pair], { metric: d.metric, width: 460, height: 200 }) : "",
    pair ? pairLegend() : "",
    holdout ? metricsTable(c, d.metric) : "",
  );
}

// Every metric retrainq measured on the holdout, for both models.
function metricsTable(c, gateMetric) {
  const champion = c.champion_metrics;
  const rows = Object.entries(c.challenger_metrics).map(([name, value]) => {
    const old = champion ? champion[name] : undefined;
    return h("tr", { "data-metric": name },
      h("td", {}, name, name === gateMetric ? h("span", { class: "muted small" }, " (gate)") : ""),
      h("td", { class: "num", "data-test": "champion" }, fmtNumber(old, 4)),
      h("td", { class: "num", "data-test": "challenger" }, fmtNumber(value, 4)),
      h("td", { class: "num" }, typeof old === "number" ? signed(value - old) : ""));
  });
  return table(["on the same rows", "deployed model", "candidate", "change"], rows, { "data-test": "comparison-metrics" });
}

export function pairLegend() {
  return h("div", { class: "legend" },
    h("span", { class: "key pair-champion" }, "deployed model"),
    h("span", { class: "key pair-accepted" }, "candidate, deployed"),
    h("span", { class: "key pair-rejected" }, "candidate, rejected"),
    h("span", { class: "key pair-whisker" }, "deployed model plus the interval of the improvement (paired bootstrap)"));
}

// The tenant page's card: one pair per version judged on held-out rows.
export function comparisonCard(runs, metric) {
  const pairs = [...runs].sort((a, b) => a.seq - b.seq).map(pairOf).filter((p) => p !== null && p !== undefined);
  const reported = runs.filter((r) => r.decision && r.decision.evaluation !== "holdout" && r.decision.metric !== "rollback").length;
  return card("Deployed model vs candidate, on the same rows",
    h("p", { class: "muted small" }, `${metric} of the model that was serving and of the candidate on the same held-out rows of each version's new data; the whisker is where the candidate may lie: the deployed model's value plus the interval of the improvement from a paired bootstrap of those rows.`),
    pairedChart(pairs, { metric, width: 1150, height: 250 }),
    pairLegend(),
    reported ? h("p", { class: "muted small", "data-test": "reported-versions" }, `${reported} version${reported === 1 ? " was" : "s were"} judged on reported figures (each model's own evaluation, different rows) and ${reported === 1 ? "is" : "are"} not drawn here: `,
      runs.filter((r) => r.decision && r.decision.evaluation !== "holdout" && r.decision.metric !== "rollback").slice(0, 5).map((r) => [link(`#/run/${r.id}`, `v${r.seq}`), " "])) : "");
}
