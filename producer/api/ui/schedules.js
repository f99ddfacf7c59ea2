// Schedules (admin): every recurring retrain, soonest first. Fleet-wide schedules are created,
// replaced and deleted here; a tenant's own schedule is a field of the tenant (its page).

import { act } from "./actions.js";
import { api, card, h, link, poll, table } from "./app.js";
import { fmtTime } from "./time.js";

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export async function schedulesPage(main) {
  document.title = "Schedules · retrainq";
  await api("/v1/schedules"); // 403 for tenant keys before drawing anything
  const messages = h("div", { id: "messages" });
  const list = h("div");
  const reload = async () => list.replaceChildren(scheduleTable(await api("/v1/schedules"), remove));
  const remove = (schedule) =>
    act(messages, {
      what: "Delete",
      confirm: { title: "Delete schedule", text: `Delete the fleet-wide schedule ${schedule.name} (${schedule.cron})? No more bulk retrains start from it.`, confirm: "Delete", danger: true },
      request: async () => {
        await api(`/v1/schedules/${encodeURIComponent(schedule.name)}`, { method: "DELETE" });
        await reload();
      },
      done: () => `Deleted schedule ${schedule.name}.`,
    });
  main.replaceChildren(
    h("h1", {}, "Schedules"),
    messages,
    card("All schedules", h("p", { class: "muted small" }, "Fleet-wide schedules start a bulk retrain of every tenant (or of one target kind); a tenant schedule retrains one tenant and is set on the tenant. Cron fields are minute, hour, day of month, month, day of week, in UTC."), list),
    card("Create or replace a fleet-wide schedule", scheduleForm(messages, reload)),
  );
  await poll(reload, 10000);
}

function scheduleTable(page, remove) {
  return table(
    ["name", "kind", "retrains", "cron (UTC)", "next run", ""],
    page.items.map((x) =>
      h(
        "tr",
        { "data-schedule": x.name },
        h("td", { class: "mono" }, x.name),
        h("td", {}, x.kind === "fleet" ? "fleet-wide" : "tenant"),
        h("td", {}, x.kind === "tenant" ? link(`#/tenant/${encodeURIComponent(x.tenant_id)}`, x.tenant_id) : x.target_kind ? `every ${({ classic: "classic endpoint", new: "new web service", v2_pool: "v2 pool" })[x.target_kind] || x.target_kind} tenant` : "every tenant"),
        h("td", { class: "mono" }, x.cron),
        h("td", { class: "nowrap", "data-test": "next-fire" }, fmtTime(x.next_fire_at)),
        h("td", {}, x.kind === "fleet" ? h("button", { type: "button", class: "danger small", "data-test": "delete-schedule", onclick: () => remove(x) }, "Delete") : h("span", { class: "muted small" }, "set on the tenant")),
      ),
    ),
    { "data-test": "schedules" },
  );
}

function scheduleForm(messages, reload) {
  const name = h("input", { id: "schedule-name", required: true, placeholder: "nightly", autocomplete: "off", pattern: NAME.source });
  const cron = h("input", { id: "schedule-cron", required: true, placeholder: "0 2 * * *", autocomplete: "off" });
  const kind = h("select", { id: "schedule-kind" }, h("option", { value: "" }, "every tenant"), h("option", { value: "classic" }, "classic endpoint tenants"), h("option", { value: "new" }, "new web service tenants"), h("option", { value: "v2_pool" }, "v2 pool tenants"));
  const form = h(
    "form",
    { class: "schedule-form", id: "schedule-form" },
    h("label", { for: "schedule-name" }, "name"), name,
    h("label", { for: "schedule-cron" }, "cron"), cron,
    h("label", { for: "schedule-kind" }, "retrains"), kind,
    h("button", { type: "submit", id: "schedule-save" }, "Save schedule"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { cron: cron.value.trim(), target_kind: kind.value || null };
    const named = name.value.trim();
    await act(messages, {
      what: "Saving the schedule",
      confirm: { title: "Save schedule", text: `Bulk retrain ${kind.value ? `the ${kind.value} tenants` : "every tenant"} on "${body.cron}" (UTC) as ${named}? A schedule of that name is replaced.`, confirm: "Save" },
      request: async () => {
        const saved = await api(`/v1/schedules/${encodeURIComponent(named)}`, { method: "PUT", body });
        await reload();
        return saved;
      },
      done: (saved) => `Saved ${saved.name}: next run ${fmtTime(saved.next_fire_at)}.`,
    });
  });
  return [form, h("p", { class: "muted small" }, "The API refuses schedules that fire more often than its minimum interval.")];
}

