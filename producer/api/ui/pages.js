// Fleet overview and batch pages (admin); the tenant and run pages live in tenant.js.

import { act, post } from "./actions.js";
import { api, badge, card, fmtDuration, fmtTime, h, link, poll, table } from "./app.js";
import { STATE_COLOURS, activityChart, endOf, timeline, widthName } from "./charts.js";
import { tenantTable } from "./tenant_table.js";
import { fmtHourMinute, zoneName } from "./time.js";

export { schedulesPage } from "./schedules.js";
export { runPage, tenantPage } from "./tenant.js";

const FAILED = ["failed", "cancelled"];

function stat(label, value, attrs = {}) {
  return h("div", { class: "stat", ...attrs }, h("div", { class: "value" }, String(value)), h("div", { class: "label" }, label));
}

// ``atLeast``: the counts are lower bounds (a fleet larger than the API's tenant scan).
function countList(counts, attrs = {}, atLeast = false) {
  const entries = Object.entries(counts).filter(([, n]) => n > 0);
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return h("ul", { class: "counts", ...attrs }, entries.map(([name, n]) => h("li", { "data-key": name }, badge(name), atLeast ? ` ≥ ${n}` : ` ${n}`)));
}

function meter(used, cap) {
  const pct = cap ? Math.min(100, (100 * used) / cap) : 0;
  return h("div", { class: "meter" }, h("div", { class: "fill", "width%": pct }));
}

const OUTCOMES = ["succeeded", "rejected", "failed", "cancelled"];
const BATCH_STATES = { running: "Running", succeeded: "Succeeded", finished_with_failures: "Finished with failures", failed: "Failed", cancelled: "Cancelled" };

// A batch's bar: one segment per outcome (succeeded, rejected, failed, cancelled), so a batch
// whose runs all failed reads red, not a green 100 %.
export function progressBar(status) {
  const pct = Math.round(status.progress * 1000) / 10;
  const share = (n) => (status.total ? (100 * n) / status.total : 0);
  return h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100, "data-test": "progress", "data-progress": pct, "data-state": status.state },
    OUTCOMES.filter((k) => status.counts[k]).map((k) => h("div", { class: `fill state-${k}`, "width%": share(status.counts[k]), title: `${status.counts[k]} ${k}`, "data-outcome": k })),
    h("span", {}, `${pct}%`),
  );
}

export function batchBadge(state) {
  return h("span", { class: `badge batch-${state}`, "data-test": "batch-state" }, BATCH_STATES[state] || state);
}

// --- fleet ---------------------------------------------------------------------------------

export async function fleetPage(main) {
  document.title = "Fleet · retrainq";
  const slots = h("div");
  const input = h("input", { id: "tenant-id", placeholder: "tenant id", "aria-label": "tenant id", required: true });
  const jump = h("form", { class: "jump" }, input, h("button", { type: "submit" }, "Open tenant"));
  jump.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/tenant/${encodeURIComponent(input.value.trim())}`;
  });
  const tenants = tenantTable();
  main.replaceChildren(h("div", { class: "row-between" }, h("h1", {}, "Fleet"), jump), slots, tenants.element);
  await poll(async () => {
    const [fleet, batches] = await Promise.all([api("/v1/fleet?hours=24"), api("/v1/batches?limit=10"), tenants.refresh()]);
    slots.replaceChildren(...fleetCards(fleet, batches));
  }, 3000);
}

// The runs chart's card: its title says the span the bars cover and their width.
function activityCard(fleet) {
  const activity = fleet.activity || { bucket_seconds: 3600, buckets: fleet.runs_by_hour };
  const { buckets, bucket_seconds: seconds } = activity;
  const from = buckets.length ? Date.parse(buckets[0].start) : Date.now();
  const width = seconds === 3600 ? "hourly" : `${widthName(seconds)}`;
  return card(
    `Runs of the last ${fleet.hours} hours`,
    countList(fleet.runs_by_state, { "data-test": "runs-by-state" }, fleet.tenants.complete === false),
    h("p", { class: "muted small", "data-test": "activity-caption" }, Object.keys(fleet.runs_by_state).length
      ? `${width} bars from ${fmtHourMinute(from, seconds < 60)} to now (${zoneName(from)}), scaled to the span of the runs created`
      : `no runs created in these hours; hourly bars, times in ${zoneName(from)}`),
    activityChart(activity),
    legend(),
  );
}

// Past the tenants the API's scan reads, counts cover the first ``scanned`` tenants only.
function partialNote(t) {
  if (t.complete !== false) return "";
  return h("p", { class: "muted small", "data-test": "scan-partial" }, `counted over the first ${t.scanned.toLocaleString("en")} of ${t.total.toLocaleString("en")} tenants by onboarding: these counts and the runs below are lower bounds`);
}

function fleetCards(fleet, batches) {
  const t = fleet.tenants;
  const partial = t.complete === false;
  const services = fleet.services.map((svc) =>
    h(
      "div",
      { class: "service", "data-service": svc.name },
      h("div", { class: "row-between" }, h("strong", {}, svc.name), h("span", {}, `${svc.slots_in_use} / ${svc.max_running ?? "?"} slots`)),
      meter(svc.slots_in_use, svc.max_running),
      h("div", { class: "muted small" }, `waiting: ${svc.waiting_interactive} interactive, ${svc.waiting_bulk} bulk `, throttleBadge(svc)),
      (svc.endpoints || []).length
        ? h("ul", { class: "endpoints small muted", "data-test": "endpoints" }, svc.endpoints.map((e) => h("li", { "data-endpoint": e.index }, `endpoint ${e.index}: ${e.slots_in_use} / ${e.max_concurrent_jobs} slots`)))
        : "",
    ),
  );
  const b = fleet.backlog;
  return [
    h(
      "div",
      { class: "grid" },
      card("Tenants", h("div", { class: "stats" }, stat("tenants", t.total, { "data-test": "tenant-total" }), ...Object.entries(t.by_kind).map(([k, n]) => stat(({ classic: "classic endpoints", new: "new services", v2_pool: "v2 pool tenants" })[k] || k, partial ? `≥ ${n}` : n))), h("h3", {}, "Model state"), countList(t.by_model_state, { "data-test": "model-states" }, partial), partialNote(t)),
      card("BES slots", ...services),
      card("Backlog", h("div", { class: "stats", "data-test": "backlog" }, stat("ready steps", b.ready), stat("deferred steps", b.deferred), stat("waiting for a slot", b.waiting_slot))),
    ),
    activityCard(fleet),
    card(
      "Bulk retrains",
      table(
        ["batch", "started", "reason", "state", "progress", "done", "failed"],
        batches.items.map((x) =>
          h(
            "tr",
            { "data-batch": x.id },
            h("td", {}, link(`#/batch/${x.id}`, x.id.slice(0, 8))),
            h("td", {}, fmtTime(x.created_at)),
            h("td", {}, x.reason),
            h("td", {}, batchBadge(x.state)),
            h("td", { class: "wide" }, progressBar(x)),
            h("td", {}, `${x.done} / ${x.total}`),
            h("td", {}, String(FAILED.reduce((a, k) => a + (x.counts[k] || 0), 0))),
          ),
        ),
        { "data-test": "batches" },
      ),
    ),
  ];
}

// Dispatch to a service pauses after it answers 429 or 503; the badge says for how long.
function throttleBadge(svc) {
  if (!svc.throttled) return "";
  const left = svc.throttle_seconds_left;
  const text = left === null || left === undefined ? "throttled" : `throttled, resumes in ${fmtDuration(left)}`;
  return h("span", { class: "badge state-failed", "data-test": "throttled", title: "the service answered 429 or 503: dispatch is paused" }, text);
}

export function legend(states = Object.keys(STATE_COLOURS)) {
  return h("div", { class: "legend" }, states.map((state) => h("span", { class: `key state-${state}` }, state.replaceAll("_", " "))));
}

// --- batch ---------------------------------------------------------------------------------

export async function batchPage(main, batchId) {
  document.title = `Batch ${batchId.slice(0, 8)} · retrainq`;
  await api(`/v1/batches/${encodeURIComponent(batchId)}`); // 404 before drawing anything
  const body = h("div");
  const messages = h("div", { id: "messages" });
  const retry = retryFailed(batchId, messages);
  main.replaceChildren(h("div", { class: "row-between" }, h("h1", {}, "Bulk retrain ", h("span", { class: "mono" }, batchId.slice(0, 8))), retry.element), messages, body);
  // Counters every second; the run list (up to thousands of rows) every fifth second and once
  // more at the end, so a large batch does not make the page re-read it continuously.
  let runs = [];
  let tick = 0;
  await poll(async () => {
    const status = await api(`/v1/batches/${batchId}`);
    if (status.archived) {
      // An archived batch is a summary (counts by final state); its runs left its list.
      retry.show({ counts: {} });
      body.replaceChildren(archivedBatch(status));
      return false;
    }
    const ended = status.done >= status.total;
    if (tick % 5 === 0 || ended) runs = await allRuns(batchId);
    tick += 1;
    retry.show(status);
    body.replaceChildren(...batchCards(status, runs));
    return !ended; // stop polling once every run ended
  }, 1000);
}

function archivedBatch(status) {
  return card(
    "Progress",
    h("p", {}, batchBadge(status.state), " ", h("span", { class: "badge archived", "data-test": "archived" }, "archived")),
    progressBar(status),
    h("p", { class: "muted small", "data-test": "archived-note" }, `Archived after its retention: this is its summary (reason ${status.reason}, started ${fmtTime(status.created_at)}). Its runs are no longer listed with it; each tenant's page still lists its own.`),
    countList(status.counts, { "data-test": "counts" }),
  );
}

// "Retry failed": shown once the batch has failed (or cancelled) runs; it starts a new bulk
// retrain of those tenants (POST /v1/batches/{id}/retry-failed, admin only like this page).
function retryFailed(batchId, messages) {
  const include = h("input", { type: "checkbox", id: "retry-cancelled" });
  const includeLabel = h("label", { class: "small", for: "retry-cancelled" }, include, " include cancelled");
  const button = h("button", { type: "button", id: "retry-failed" }, "Retry failed");
  const element = h("div", { class: "actions", hidden: true }, includeLabel, button);
  let counts = {};
  button.addEventListener("click", () => {
    const withCancelled = (include.checked || !counts.failed) && counts.cancelled > 0;
    const n = (counts.failed || 0) + (withCancelled ? counts.cancelled : 0);
    act(messages, {
      what: "Retry",
      confirm: {
        title: "Retry failed runs",
        text: `Start a new bulk retrain of the ${n} tenant${n === 1 ? "" : "s"} whose runs ${withCancelled ? "failed or were cancelled" : "failed"} in batch ${batchId.slice(0, 8)}?`,
        confirm: "Start the retry",
      },
      request: () => post(`/v1/batches/${batchId}/retry-failed`, withCancelled ? "?include_cancelled=true" : ""),
      done: (accepted) => [
        "Retry started: batch ",
        link(`#/batch/${accepted.batch_id}`, accepted.batch_id.slice(0, 8), { "data-test": "retry-batch" }),
        ` with ${accepted.total} run${accepted.total === 1 ? "" : "s"}`,
        accepted.coalesced ? ` (${accepted.coalesced} joined runs already active)` : "",
      ],
    });
  });
  return {
    element,
    show(status) {
      counts = status.counts;
      const failed = counts.failed || 0;
      const cancelled = counts.cancelled || 0;
      element.hidden = failed + cancelled === 0;
      includeLabel.hidden = cancelled === 0;
      button.textContent = `Retry failed (${failed}${cancelled ? ` + ${cancelled} cancelled` : ""})`;
    },
  };
}

async function allRuns(batchId, cap = 4000) {
  const runs = [];
  let offset = 0;
  while (offset !== null && runs.length < cap) {
    const page = await api(`/v1/batches/${batchId}/runs?limit=1000&offset=${offset}`);
    runs.push(...page.items);
    offset = page.next_offset;
  }
  return runs;
}

function batchCards(status, runs) {
  const elapsed = (Date.now() - Date.parse(status.created_at)) / 1000;
  const finished = runs.map(endOf).filter((x) => x !== null);
  const lastEnd = finished.length ? Math.max(...finished) : null;
  const took = status.done >= status.total && lastEnd ? (lastEnd - Date.parse(status.created_at)) / 1000 : elapsed;
  const slowest = slowestRuns(runs, Date.now());
  const waits = runs.map((r) => slotWait(r)).filter((x) => x !== null);
  const longestWait = waits.length ? Math.max(...waits) : null;
  return [
    card(
      "Progress",
      h("p", {}, batchBadge(status.state)),
      progressBar(status),
      h("div", { class: "stats" },
        stat("done", `${status.done} / ${status.total}`, { "data-test": "done" }),
        stat("throughput", status.throughput_per_second === null ? "unknown" : `${(status.throughput_per_second * 60).toFixed(1)} / min`, { "data-test": "throughput" }),
        status.done >= status.total
          ? stat("took", fmtDuration(took))
          : stat("ETA", status.eta_seconds === null ? "unknown" : fmtDuration(status.eta_seconds), { "data-test": "eta" }),
        stat("longest wait for a slot", fmtDuration(longestWait))),
      h("p", { class: "muted small" }, `reason: ${status.reason} · started ${fmtTime(status.created_at)}`),
      countList(status.counts, { "data-test": "counts" }),
    ),
    card(
      "Timeline",
      h("p", { class: "muted small" }, "One row per run from creation to end: queued or waiting for a BES slot, training, then evaluating, scoring both models on held-out rows (holdout mode) and deploying; the mark at the end is the outcome. Long rows are stragglers; long amber starts mean throttling or a full service."),
      runs.length ? timeline(runs, { start: status.created_at }) : h("p", { class: "muted" }, "no runs"),
      legend(["queued", "waiting_slot", "training", "scoring", "deploying", "succeeded", "rejected", "failed", "cancelled"]),
    ),
    h("div", { class: "grid two" }, failuresCard(runs), card(
      "Slowest runs",
      slowest.length
        ? table(["run", "tenant", "state", "took"], slowest.map(({ run, seconds, running }) =>
            h("tr", { "data-run": run.id }, h("td", {}, link(`#/run/${run.id}`, run.id.slice(0, 8))), h("td", {}, run.tenant_id), h("td", {}, badge(run.state)), h("td", {}, running ? `${fmtDuration(seconds)} so far` : fmtDuration(seconds)))),
            { "data-test": "slowest" })
        : h("p", { class: "muted" }, "no runs"),
      h("p", { class: "muted small" }, `the ${SLOWEST} longest runs, ended or not: a run still going counts its age`),
    )),
  ];
}

const SLOWEST = 8;

// The longest runs: ended ones by duration, runs still going by age at `now` (ms).
export function slowestRuns(runs, now, count = SLOWEST) {
  const timed = runs.map((run) => {
    const end = endOf(run);
    return { run, running: end === null, seconds: ((end ?? now) - Date.parse(run.created_at)) / 1000 };
  });
  timed.sort((a, b) => b.seconds - a.seconds);
  return timed.slice(0, count);
}

// Seconds a run waited for a BES slot (from waiting_slot to submitting), if it got one.
function slotWait(run) {
  const { waiting_slot: from, submitting: to } = run.phases;
  return from && to ? (Date.parse(to) - Date.parse(from)) / 1000 : null;
}

function failuresCard(runs) {
  const groups = new Map();
  for (const run of runs) {
    let reason = null;
    // The API groups failures by class (error code and remote code) and message shape.
    if (FAILED.includes(run.state)) reason = `${run.state}: ${run.failure_class || run.error_code || "unknown"} · ${run.failure_shape || (run.error || "no reason recorded").slice(0, 100)}`;
    else if (run.state === "rejected") reason = `rejected by the gate (${(run.decision && run.decision.metric) || "metric"})`;
    if (reason === null) continue;
    if (!groups.has(reason)) groups.set(reason, []);
    groups.get(reason).push(run);
  }
  const items = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  return card(
    "Failures by reason",
    items.length
      ? h("ul", { class: "failures", "data-test": "failures" }, items.map(([reason, list]) =>
          h("li", {}, h("strong", {}, `${list.length} × `), reason, h("div", { class: "runs" },
            list.slice(0, 30).map((r) => link(`#/run/${r.id}`, r.tenant_id, { title: r.error || (r.decision && r.decision.reason) || "" }))))))
      : h("p", { class: "muted", "data-test": "no-failures" }, "no failed, cancelled or rejected runs"),
  );
}
