// Actions that change something: each asks first in a modal dialog, then calls the API and
// reports the outcome in a notice. Buttons are shown only where the API would allow them.

import { api, h, notice } from "./app.js";

// Ask before acting: resolves true when the user confirms, false when they cancel (the
// button, Escape or a click outside). One dialog at a time.
export function confirmDialog({ title, text, confirm, danger = false }) {
  document.querySelectorAll("dialog.confirm").forEach((old) => old.remove());
  return new Promise((resolve) => {
    const yes = h("button", { type: "button", class: danger ? "danger" : "", "data-test": "confirm-yes" }, confirm);
    const no = h("button", { type: "button", class: "secondary", "data-test": "confirm-no" }, "Go back");
    const dialog = h(
      "dialog",
      { class: "confirm", "data-test": "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { "data-test": "confirm-text" }, text),
      h("div", { class: "actions end" }, no, yes),
    );
    let answered = false;
    const answer = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    yes.addEventListener("click", () => answer(true));
    no.addEventListener("click", () => answer(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      answer(false);
    });
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) answer(false); // the backdrop
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

// Confirm, call ``request`` (a function returning the API's promise), and put the outcome in
// ``messages``: ``done(result)`` builds the success notice's content.
export async function act(messages, { what, confirm, request, done }) {
  if (!(await confirmDialog(confirm))) return null;
  try {
    const result = await request();
    messages.replaceChildren(h("div", { class: "notice ok", role: "status", "data-test": "action-done" }, ...[].concat(done(result))));
    return result;
  } catch (exc) {
    messages.replaceChildren(notice("error", `${what} failed: ${exc.detail || exc.message}`));
    return null;
  }
}

// May this caller act on ``tenantId``? An admin key on every tenant, a tenant key on its own
// (the rule of the API's tenant and run routes; other tenants answer 404).
export function mayActOn(caller, tenantId) {
  return Boolean(caller && (caller.admin || caller.tenant_id === tenantId));
}

export const post = (path, query = "") => api(`${path}${query}`, { method: "POST" });
