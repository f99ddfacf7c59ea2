// Tenant page (model history, endpoint, recent runs, retrain and roll back) and run page.

import { act, mayActOn, post } from "./actions.js";
import { api, badge, card, errorPanel, fmtClock, fmtDate, fmtDuration, fmtNumber, fmtTime, h, link, poll, table } from "./app.js";
import { metricChart } from "./charts.js";
import { comparisonCard, decisionCard } from "./gate.js";

const DEFAULT_METRIC = "Coefficient of Determination";
const PHASES = ["queued", "waiting_slot", "submitting", "training", "evaluating", "staging", "scoring", "deploying", "succeeded", "rejected", "failed", "cancelled"];

function field(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

// Phases in the order they happened, each with its duration (until the next phase).
export function phaseSteps(run) {
  const steps = Object.entries(run.phases)
    .map(([phase, at]) => ({ phase, at, ms: Date.parse(at) }))
    .sort((a, b) => a.ms - b.ms || PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase));
  return steps.map((step, i) => ({ ...step, seconds: i + 1 < steps.length ? (steps[i + 1].ms - step.ms) / 1000 : null }));
}

function phaseStrip(run) {
  return h("span", { class: "phases" }, phaseSteps(run).map((p) =>
    h("span", { class: `phase state-${p.phase}`, title: `${p.phase} at ${fmtTime(p.at)}` }, p.phase.replaceAll("_", " "), p.seconds !== null ? ` ${fmtDuration(p.seconds)}` : "")));
}

function totalSeconds(run) {
  const steps = phaseSteps(run);
  return steps.length > 1 ? (steps[steps.length - 1].ms - steps[0].ms) / 1000 : null;
}

// Points of the metric chart: one per run version that has the gate metric.
export function historyPoints(runs, models, current, metric) {
  const rolledBack = new Set();
  models.forEach((m, i) => {
    if (m.rollback_of && models[i + 1]) rolledBack.add(models[i + 1].run_id);
  });
  const points = [];
  for (const run of [...runs].sort((a, b) => a.seq - b.seq)) {
    const value = run.metrics[metric];
    if (typeof value !== "number") continue;
    let kind;
    if (run.rollback_to) kind = "rollback";
    else if (run.state === "rejected") kind = "rejected";
    else if (run.deployed || run.state === "succeeded") kind = "deployed";
    else continue;
    points.push({ seq: run.seq, value, kind, runId: run.id, rolledBack: rolledBack.has(run.id), serving: current && current.run_id === run.id });
  }
  return points;
}

export async function tenantPage(main, tenantId, caller) {
  document.title = `${tenantId} · retrainq`;
  const path = `/v1/tenants/${encodeURIComponent(tenantId)}`;
  const tenant = await api(path); // 404 for tenants this key may not see
  const messages = h("div", { id: "messages" });
  const body = h("div");
  const started = (what) => (accepted) => {
    const runLink = link(`#/run/${accepted.run.id}`, accepted.run.id.slice(0, 8), { "data-test": "action-run" });
    return [`${what}: run `, runLink, accepted.coalesced ? " (joined the active run)" : " started"];
  };
  const retrain = h("button", { id: "retrain", onclick: () => act(messages, {
    what: "Retrain",
    confirm: { title: "Retrain", text: `Retrain ${tenantId} now on its latest data? A model that passes the gate replaces the one serving.`, confirm: "Retrain" },
    request: () => post(`${path}/retrains`),
    done: started("Retrain"),
  }) }, "Retrain");
  const rollback = h("button", { id: "rollback", class: "danger", hidden: true, onclick: () => act(messages, {
    what: "Roll back",
    confirm: { title: "Roll back", text: `Roll ${tenantId} back to its previous model? The endpoint will serve that model again.`, confirm: "Roll back", danger: true },
    request: () => post(`${path}/rollback`),
    done: started("Roll back"),
  }) }, "Roll back");
  // The API's tenant routes answer this key (the GET above did): it may act on the tenant.
  const actions = h("div", { class: "actions" }, mayActOn(caller, tenant.id) ? [retrain, rollback] : []);
  main.replaceChildren(
    h("div", { class: "row-between" }, h("h1", {}, tenant.display_name || tenant.id, " ", h("span", { class: "muted mono" }, tenant.id)), actions),
    messages,
    body,
  );
  const cancel = (run) => act(messages, {
    what: "Cancel",
    confirm: { title: "Cancel run", text: `Cancel run ${run.id.slice(0, 8)} of ${run.tenant_id} (${run.state.replaceAll("_", " ")})? A training job it started is deleted; the serving model stays.`, confirm: "Cancel the run", danger: true },
    request: () => api(`/v1/runs/${encodeURIComponent(run.id)}`, { method: "DELETE" }),
    done: (ended) => ["Cancel requested for run ", link(`#/run/${ended.id}`, ended.id.slice(0, 8), { "data-test": "action-run" })],
  });
  await poll(async () => {
    const [fresh, models, runs] = await Promise.all([api(path), api(`${path}/models`), api(`${path}/runs?limit=50`)]);
    rollback.hidden = !hasPreviousModel(models);
    body.replaceChildren(...tenantCards(fresh, models, runs.items, mayActOn(caller, tenant.id) ? cancel : null));
  }, 2000);
}

// How the serving model's gate judged it: on held-out rows against the model before it, or
// on reported figures.
export function judgedText(current) {
  const d = current && current.decision;
  if (!current) return "–";
  if (current.rollback_of) return "restored by a rollback";
  if (!d) return "no decision recorded";
  const value = fmtNumber(d.value, 4);
  if (d.evaluation === "holdout" && d.comparison) {
    const rows = d.comparison.holdout_rows;
    return typeof d.baseline === "number"
      ? `on ${rows} held-out rows: the model before ${fmtNumber(d.baseline, 4)}, this one ${value}`
      : `on ${rows} held-out rows: ${value}, no model deployed before`;
  }
  return typeof d.baseline === "number" ? `on reported figures: ${value} against ${fmtNumber(d.baseline, 4)}` : `on reported figures: ${value}`;
}

// Whether the API would roll back: a model serves and an older, different one is in the history.
export function hasPreviousModel(models) {
  const current = models.current;
  return Boolean(current && models.history.some((m) => m.run_id !== current.run_id && m.model_path !== current.model_path));
}

function tenantCards(tenant, models, runs, cancel) {
  const metric = (tenant.gate && tenant.gate.metric) || DEFAULT_METRIC;
  const current = models.current;
  const target = tenant.target;
  const where = target.kind === "classic"
    ? [...field("web service", h("span", { class: "mono" }, target.web_service_id)), ...field("endpoint", h("span", { class: "mono", "data-test": "endpoint" }, tenant.endpoint_name || "not created yet"))]
    : target.kind === "v2_pool"
      ? field("pool", h("span", { class: "mono", "data-test": "endpoint" }, target.pool || "–"))
      : [...field("template", target.template_service), ...field("web service", h("span", { class: "mono", "data-test": "endpoint" }, tenant.service_name || "not created yet"))];
  return [
    h("div", { class: "grid two" },
      card("Deployment", h("dl", { class: "fields" },
        ...field("target", ({ classic: "classic endpoint", new: "new web service", v2_pool: "v2 serving pool" })[target.kind] || target.kind),
        ...where,
        ...field("training service", tenant.training_service),
        ...field("serving", current ? h("span", { "data-test": "serving-version" }, `v${current.seq} `, link(`#/run/${current.run_id}`, current.run_id.slice(0, 8)), current.rollback_of ? " (rollback)" : "") : "no model yet"),
        ...field("deployed at", current ? fmtTime(current.deployed_at) : "–"),
        ...field(metric, current ? fmtNumber(current.metrics[metric], 4) : "–", current ? h("span", { class: "muted small" }, " (reported by its training)") : ""),
        ...field("judged", h("span", { "data-test": "serving-judged" }, judgedText(current))),
        ...field("data", `version ${tenant.data_version}`),
        ...field("gate", tenant.gate ? `${metric}, max regression ${tenant.gate.max_regression ?? "none"}, threshold ${tenant.gate.threshold ?? "none"}${tenant.gate.evaluation ? `, judged on ${tenant.gate.evaluation === "holdout" ? "held-out rows" : "the reported evaluation"}` : ""}` : `default (${metric}, at most 10% worse)`),
        ...field("schedule", tenant.schedule ? h("span", { class: "mono" }, `${tenant.schedule} (UTC)`) : "none"),
      )),
      card("Model history", h("p", { class: "muted small" }, `${metric} of each version`), metricChart(historyPoints(runs, models.history, current, metric), { metric }),
        h("div", { class: "legend" }, ...["deployed", "rejected", "rollback", "rolled-back", "serving"].map((k) => h("span", { class: `key point-${k}` }, k.replace("-", " "))))),
    ),
    comparisonCard(runs, metric),
    card("Recent runs", table(["version", "run", "state", "reason", "created", "phases", "took", "decision", ""], runs.map((run) =>
      h("tr", { "data-run": run.id, "data-archived": run.archived ? "true" : null },
        h("td", {}, `v${run.seq}`),
        h("td", {}, link(`#/run/${run.id}`, run.id.slice(0, 8)), run.archived ? archivedBadge() : ""),
        h("td", {}, badge(run.state)),
        h("td", {}, run.reason),
        h("td", { class: "nowrap" }, fmtTime(run.created_at)),
        h("td", {}, phaseStrip(run)),
        h("td", { class: "nowrap" }, fmtDuration(totalSeconds(run))),
        h("td", { class: "small" }, run.error || (run.decision && run.decision.reason) || ""),
        h("td", {}, cancel && !run.archived && !ENDED.includes(run.state)
          ? h("button", { type: "button", class: "danger small", "data-test": "cancel-run", disabled: run.cancel_requested, onclick: () => cancel(run) }, run.cancel_requested ? "Cancelling" : "Cancel")
          : ""))), { "data-test": "runs" }),
      runs.some((run) => run.archived)
        ? h("p", { class: "muted small", "data-test": "archived-note" }, "Runs marked archived have moved from Redis to blob storage after their retention; they no longer change and cannot be cancelled.")
        : ""),
  ];
}

// --- run -----------------------------------------------------------------------------------

const archivedBadge = () => h("span", { class: "badge archived", "data-test": "archived", title: "read from the archive in blob storage" }, "archived");

const ENDED = ["succeeded", "rejected", "failed", "cancelled"];

// Why a run has no gate decision: it ended before the gate, or has not reached it yet.
export function gateNotice(run) {
  if (run.state === "failed") return "not reached: the run failed before the gate";
  if (run.state === "cancelled") return "not reached: the run was cancelled before the gate";
  if (ENDED.includes(run.state)) return "no decision recorded";
  return "not decided yet";
}

// A run that retries a step shows its last transient error, its failures and its next try.
function retryCard(run) {
  if (ENDED.includes(run.state) || !(run.last_error || run.step_failures)) return "";
  return h("section", { class: "card retrying", "data-test": "retrying" },
    h("h2", {}, "Retrying"),
    h("dl", { class: "fields" },
      ...field("last error", h("span", { "data-test": "last-error" }, run.last_error || "–")),
      ...field("failed tries", h("span", { "data-test": "step-failures" }, String(run.step_failures))),
      ...field("next try", h("span", { "data-test": "next-attempt" }, run.next_attempt_at ? fmtTime(run.next_attempt_at) : "–"))));
}

export async function runPage(main, runId, caller) {
  document.title = `Run ${runId.slice(0, 8)} · retrainq`;
  const body = h("div");
  const messages = h("div", { id: "messages" });
  main.replaceChildren(messages, body);
  let cancelled = false;
  const cancel = (run) => act(messages, {
    what: "Cancel",
    confirm: { title: "Cancel run", text: `Cancel run ${run.id.slice(0, 8)} of ${run.tenant_id} (${run.state.replaceAll("_", " ")})? A training job it started is deleted; the serving model stays.`, confirm: "Cancel the run", danger: true },
    request: () => api(`/v1/runs/${encodeURIComponent(run.id)}`, { method: "DELETE" }),
    done: () => { cancelled = true; return "Cancel requested: the run stops at its next step."; },
  });
  await poll(async () => {
    let run;
    try {
      run = await api(`/v1/runs/${encodeURIComponent(runId)}`);
    } catch (exc) {
      body.replaceChildren(errorPanel(exc));
      return false;
    }
    const mayCancel = mayActOn(caller, run.tenant_id) && !run.archived && !ENDED.includes(run.state);
    body.replaceChildren(...runCards(run, caller, mayCancel ? h("button", { type: "button", id: "cancel-run", class: "danger", disabled: cancelled || run.cancel_requested, onclick: () => cancel(run) }, cancelled || run.cancel_requested ? "Cancel requested" : "Cancel run") : ""));
    return !ENDED.includes(run.state);
  }, 1500);
}

function runCards(run, caller, cancelButton) {
  const d = run.decision;
  const metrics = Object.entries(run.metrics);
  return [
    h("div", { class: "row-between" }, h("h1", {}, "Run ", h("span", { class: "mono" }, run.id.slice(0, 12)), " ", badge(run.state), run.archived ? [" ", archivedBadge()] : ""), h("div", { class: "actions" }, cancelButton)),
    run.archived ? h("p", { class: "muted small", "data-test": "archived-note" }, "Read from the archive in blob storage: this run ended and moved out of Redis after its retention.") : "",
    h("div", { class: "grid two" },
      card("Run", h("dl", { class: "fields" },
        ...field("tenant", link(`#/tenant/${encodeURIComponent(run.tenant_id)}`, run.tenant_id)),
        ...field("version", `v${run.seq}`),
        ...field("reason", run.reason, run.rollback_to ? h("span", {}, " (restores ", link(`#/run/${run.rollback_to}`, run.rollback_to.slice(0, 8)), ")") : ""),
        ...field("lane", run.lane),
        ...field("batch", run.batch_id ? (caller.admin ? link(`#/batch/${run.batch_id}`, run.batch_id.slice(0, 8)) : run.batch_id.slice(0, 8)) : "–"),
        ...field("training service", `${run.training_service}${run.bes_endpoint !== null ? ` (endpoint ${run.bes_endpoint})` : ""}`),
        ...field("BES job", h("span", { class: "mono", "data-test": "bes-job" }, run.bes_job_id || "–")),
        ...field("submissions", `${run.submit_attempts} (orphaned ${run.orphaned_submissions}), ${run.polls} polls`),
        ...field("model blob", h("span", { class: "mono small" }, run.outputs.model_path)),
        ...field("deployed", run.deployed ? "yes" : "no"),
      )),
      card("Phases", table(["phase", "at", "for"], phaseSteps(run).map((p) =>
        h("tr", { "data-phase": p.phase }, h("td", {}, badge(p.phase)), h("td", { class: "nowrap" }, `${fmtClock(p.at)} `, h("span", { class: "muted small" }, fmtDate(p.at))), h("td", {}, p.seconds === null ? "" : fmtDuration(p.seconds)))),
        { "data-test": "phases" })),
    ),
    h("div", { class: "grid two" },
      decisionCard(run, gateNotice(run)),
      card("Evaluation metrics",
        h("p", { class: "muted small" }, "What the training job's Evaluate Model reported on its own split of the training rows.", d && d.evaluation === "holdout" ? " The gate decided on the held-out rows instead (beside)." : ""),
        table(["metric", "value"], metrics.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, fmtNumber(v, 4)))), { "data-test": "metrics" })),
    ),
    retryCard(run),
    run.error ? card("Error", h("p", { class: "error", "data-test": "error" }, run.error_code ? `[${run.error_code}] ` : "", run.error)) : "",
  ];
}
