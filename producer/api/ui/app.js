// The dashboard's shell: the API helper, DOM helpers, login and hash routing.
// Every data call goes to the JSON API with the key typed at the login form (sessionStorage).

import { setZoneMode, zoneMode, zoneName } from "./time.js";

const KEY = "retrainq.key";
const ME = "retrainq.me";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (response.status === 401 && me()) {
    signOut("Your key was not accepted; sign in again."); // e.g. revoked while signed in
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
  return data;
}

// --- DOM helpers: text goes in as text nodes, never as HTML ---------------------------------

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "width%") el.style.width = `${value}%`; // CSSOM: allowed by the CSP
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const link = (href, text, attrs = {}) => h("a", { href, ...attrs }, text);

export { fmtClock, fmtDate, fmtTime } from "./time.js";

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function fmtNumber(value, digits = 3) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

export const badge = (state) => h("span", { class: `badge state-${state}` }, state.replaceAll("_", " "));

export function card(title, ...body) {
  return h("section", { class: "card" }, h("h2", {}, title), ...body);
}

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "none"))),
  );
}

export function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status", "data-test": `notice-${kind}` }, text);
}

// --- session -------------------------------------------------------------------------------

export function me() {
  const raw = sessionStorage.getItem(ME);
  return raw ? JSON.parse(raw) : null;
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ME);
  loginMessage = message || "";
  if (location.hash !== "#/login") location.hash = "#/login";
  else route();
}

let loginMessage = "";

function homeOf(caller) {
  return caller.admin ? "#/fleet" : `#/tenant/${encodeURIComponent(caller.tenant_id)}`;
}

function loginPage(main) {
  const input = h("input", {
    id: "key",
    type: "password",
    autocomplete: "off",
    required: true,
    placeholder: "admin key or tenant key (rtq_…)",
  });
  const error = h("p", { class: "error", id: "login-error" }, loginMessage);
  const form = h(
    "form",
    { class: "login card", id: "login-form" },
    h("h2", {}, "Sign in"),
    h("p", { class: "muted" }, "An admin key sees the whole fleet; a tenant key sees its own tenant."),
    h("label", { for: "key" }, "API key"),
    input,
    h("button", { type: "submit", id: "login" }, "Sign in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      const caller = await api("/v1/me");
      sessionStorage.setItem(ME, JSON.stringify(caller));
      loginMessage = "";
      location.hash = homeOf(caller);
    } catch (exc) {
      sessionStorage.removeItem(KEY);
      error.textContent = exc.status === 401 ? "That key was not accepted." : `Sign-in failed: ${exc.message}`;
    }
  });
  main.replaceChildren(form);
  input.focus();
}

// --- routing -------------------------------------------------------------------------------

let timers = [];

// Poll ``load`` every ``ms`` while the page is shown; stops on navigation or when it returns
// false. Resolves after the first load, or rejects with its error (the page shows it).
export function poll(load, ms) {
  let stopped = false;
  timers.push({ stop: () => (stopped = true) });
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try {
      again = (await load()) !== false;
    } catch (exc) {
      if (exc.status === 401) return;
    }
    if (again && !stopped) timers.push(setTimeout(tick, ms));
  };
  return load().then((again) => {
    if (again !== false && !stopped) timers.push(setTimeout(tick, ms));
  });
}

function stopTimers() {
  for (const timer of timers) {
    if (typeof timer === "object" && timer.stop) timer.stop();
    else clearTimeout(timer);
  }
  timers = [];
}

function renderChrome(caller) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!caller) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  nav.replaceChildren(
    ...(caller.admin ? [link("#/fleet", "Fleet"), link("#/schedules", "Schedules", { id: "nav-schedules" })] : [link(homeOf(caller), "My tenant")]),
  );
  who.replaceChildren(
    zoneToggle(),
    h("span", { class: "muted" }, caller.admin ? "admin" : `tenant ${caller.tenant_id}`),
    h("button", { class: "link", id: "sign-out", onclick: () => signOut("Signed out.") }, "Sign out"),
  );
}

// UTC or the browser's zone for every date; switching re-renders the page shown.
function zoneToggle() {
  const mode = zoneMode();
  const option = (value, text) =>
    h("button", {
      type: "button",
      id: `zone-${value}`,
      class: value === mode ? "on" : "",
      "aria-pressed": value === mode ? "true" : "false",
      onclick: () => {
        if (zoneMode() === value) return;
        setZoneMode(value);
        route();
      },
    }, text);
  const local = zoneMode() === "local" ? zoneName() : "local";
  return h("span", { class: "zone-toggle", role: "group", "aria-label": "time zone of dates", "data-test": "zone", "data-zone": mode },
    option("utc", "UTC"), option("local", mode === "local" ? `local (${local})` : "local"));
}

let generation = 0;

export async function route() {
  stopTimers();
  const current = ++generation;
  const main = document.getElementById("main");
  const caller = me();
  renderChrome(caller);
  const [, page, id] = (location.hash || "#/").slice(1).split("/");
  if (!caller || page === "login") {
    document.title = "Sign in · retrainq";
    if (caller && page === "login") signOut("");
    loginPage(main);
    return;
  }
  const pages = await import("./pages.js");
  if (current !== generation) return; // the hash changed while the pages loaded: that route wins
  const render = {
    fleet: pages.fleetPage,
    batch: pages.batchPage,
    tenant: pages.tenantPage,
    run: pages.runPage,
    schedules: pages.schedulesPage,
  }[page];
  if (!render) {
    location.hash = homeOf(caller);
    return;
  }
  // Each page renders into a view of its own: a page whose answers arrive after the user
  // (or a test) navigated on writes into a detached view, never over the newer page.
  const view = h("div", { class: "view" }, h("p", { class: "muted" }, "loading…"));
  main.replaceChildren(view);
  try {
    await render(view, decodeURIComponent(id || ""), caller);
  } catch (exc) {
    if (current === generation) view.replaceChildren(errorPanel(exc)); // not if we navigated on
  }
}

export function errorPanel(exc) {
  if (exc.status === 404) {
    return h(
      "section",
      { class: "card", "data-test": "not-found" },
      h("h2", {}, "Not found"),
      h("p", {}, exc.detail),
    );
  }
  if (exc.status === 403) {
    return h("section", { class: "card", "data-test": "forbidden" }, h("h2", {}, "Forbidden"), h("p", {}, exc.detail));
  }
  return notice("error", `Could not load this page: ${exc.message}`);
}

window.addEventListener("hashchange", route);
route();
