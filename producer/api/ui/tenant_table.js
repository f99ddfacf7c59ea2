// The fleet's tenant table: paged, filtered and sorted by the API (GET /v1/tenants), so a
// fleet of thousands reads page by page. Controls stay put while the rows refresh.

import { api, badge, card, fmtNumber, h, link } from "./app.js";
import { fmtTime } from "./time.js";

export const PAGE_SIZE = 20;
const DEFAULT_METRIC = "Coefficient of Determination";
const STATES = [
  ["", "every state"],
  ["retraining", "retraining"],
  ["up_to_date", "up to date"],
  ["kept_previous", "kept previous model"],
  ["no_model", "no model"],
];
// Columns that sort, by the API's sort names; the first click on one sorts it ascending,
// except the metric, best first.
const SORTABLE = { tenant: "id", state: "state", metric: "metric", created: "created" };
const FIRST_DIRECTION = { metric: "-metric" };

function queryOf(view) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), sort: view.sort });
  if (view.state) params.set("state", view.state);
  if (view.prefix) params.set("prefix", view.prefix);
  if (view.cursor) params.set("cursor", view.cursor);
  return params.toString();
}

// The table card and a ``refresh`` that reloads the page shown (the fleet page polls it).
export function tenantTable() {
  const view = { state: "", prefix: "", sort: "created", cursor: null, back: [], index: 0 };
  let latest = 0; // answers of an older query than the newest are dropped
  const rowsBody = h("tbody");
  const head = h("thead");
  const summary = h("span", { class: "muted small", "data-test": "tenant-summary" });
  const prev = h("button", { type: "button", class: "secondary", id: "tenants-prev", onclick: () => page(-1) }, "‹ Previous");
  const next = h("button", { type: "button", class: "secondary", id: "tenants-next", onclick: () => page(1) }, "Next ›");
  const table = h("table", { "data-test": "tenants" }, head, rowsBody);
  const stateSelect = h("select", { id: "tenant-state", "aria-label": "model state" }, STATES.map(([value, text]) => h("option", { value }, text)));
  const prefix = h("input", { id: "tenant-prefix", type: "search", placeholder: "id starts with…", "aria-label": "tenant id prefix", autocomplete: "off", spellcheck: "false" });
  stateSelect.addEventListener("change", () => restart({ state: stateSelect.value }));
  prefix.addEventListener("input", () => restart({ prefix: prefix.value.trim().toLowerCase() }));
  let next_cursor = null;
  const element = card(
    "Tenants",
    h("div", { class: "filters" }, h("label", { for: "tenant-state" }, "state"), stateSelect, h("label", { for: "tenant-prefix" }, "id"), prefix, summary),
    table,
    h("div", { class: "pager" }, prev, next),
  );

  function restart(change) {
    Object.assign(view, change, { cursor: null, back: [], index: 0 });
    load().catch(() => {});
  }

  function page(step) {
    if (step > 0 && next_cursor) {
      view.back.push(view.cursor);
      view.cursor = next_cursor;
      view.index += 1;
    } else if (step < 0 && view.back.length) {
      view.cursor = view.back.pop();
      view.index -= 1;
    } else return;
    load().catch(() => {});
  }

  function sortBy(column) {
    const name = SORTABLE[column];
    const first = FIRST_DIRECTION[name] || name;
    const flipped = first.startsWith("-") ? name : `-${name}`;
    restart({ sort: view.sort === first ? flipped : first });
  }

  function header() {
    const th = (label, column) => {
      if (!column) return h("th", {}, label);
      const name = SORTABLE[column];
      const active = view.sort.replace(/^-/, "") === name;
      const arrow = active ? (view.sort.startsWith("-") ? " ▼" : " ▲") : "";
      return h("th", { "aria-sort": active ? (view.sort.startsWith("-") ? "descending" : "ascending") : "none" },
        h("button", { type: "button", class: "sort", "data-sort": name, onclick: () => sortBy(column) }, label, arrow));
    };
    head.replaceChildren(h("tr", {}, th("tenant", "tenant"), th("name"), th("state", "state"), th("target"), th("endpoint / service"), th("serving"), th("metric", "metric"), th("onboarded", "created")));
  }

  async function load() {
    const query = queryOf(view);
    const mine = ++latest;
    table.setAttribute("aria-busy", "true");
    let body;
    try {
      body = await api(`/v1/tenants?${query}`);
    } catch (exc) {
      if (mine !== latest) return;
      summary.textContent = `could not list tenants: ${exc.detail || exc.message}`;
      table.removeAttribute("aria-busy");
      if (exc.status === 403 || exc.status === 401) throw exc; // the page shows it
      return;
    }
    if (mine !== latest) return; // a newer query was sent meanwhile
    header();
    rowsBody.replaceChildren(...(body.items.length ? body.items.map(row) : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no tenant matches"))]));
    next_cursor = body.next_cursor;
    const first = view.index * PAGE_SIZE;
    summary.textContent = body.items.length
      ? `${first + 1}–${first + body.items.length} of ${body.matched} matching · ${body.total} tenants`
      : `0 of ${body.total} tenants match`;
    prev.disabled = view.back.length === 0;
    next.disabled = !next_cursor;
    table.setAttribute("data-query", query);
    table.setAttribute("data-matched", String(body.matched));
    table.setAttribute("data-page", String(view.index + 1));
    table.removeAttribute("aria-busy");
  }

  header();
  return { element, refresh: load };
}

function row(x) {
  const metric = (x.gate && x.gate.metric) || DEFAULT_METRIC;
  const value = x.deployed ? x.deployed.metrics[metric] : undefined;
  return h(
    "tr",
    { "data-tenant": x.id, "data-state": x.model_state || "" },
    h("td", {}, link(`#/tenant/${encodeURIComponent(x.id)}`, x.id)),
    h("td", {}, x.display_name),
    h("td", { class: "nowrap" }, x.model_state ? badge(x.model_state) : "–", x.latest_run_state ? h("span", { class: "muted small" }, ` latest run ${x.latest_run_state.replaceAll("_", " ")}`) : ""),
    h("td", {}, ({ classic: "classic endpoint", new: "new web service", v2_pool: `v2 pool ${x.target.pool || ""}` })[x.target.kind] || x.target.kind),
    h("td", { class: "mono" }, x.endpoint_name || x.service_name || "–"),
    h("td", {}, x.deployed ? `v${x.deployed.seq}` : "–"),
    h("td", { class: "num", title: metric, "data-metric": value === undefined ? "" : value }, typeof value === "number" ? fmtNumber(value) : "–"),
    h("td", { class: "nowrap small" }, fmtTime(x.created_at)),
  );
}
