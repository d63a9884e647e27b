// Budgets: a tenant's current window (spent, held, remaining, the role and model sub-limits), a chart of
// spent and held over time from the budget's samples, and the budget alerts that fired.

import { ApiError, debounce, get, query } from "./api.js";
import { fill, h, head, row, time, usd } from "./dom.js";
import { lineChart } from "./chart.js";

export function render(main, ctx, [chosen]) {
  const picker = h("select", { id: "budget-tenant", name: "tenant" });
  const typed = h("input", { id: "budget-other", name: "other", placeholder: "another tenant", size: 14 });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Choose a tenant" },
    h("div", { class: "field" }, h("label", { for: "budget-tenant" }, "Tenant"), picker),
    ctx.me.tenant === "*" ? h("div", { class: "field" }, h("label", { for: "budget-other" }, "Or"), typed) : null,
    h("button", { type: "submit" }, "Show"),
  );
  const body = h("div", { "aria-live": "polite" });
  fill(main, h("h1", {}, "Budgets"), form, body);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/budgets/${encodeURIComponent(typed.value.trim() || picker.value)}`;
  });
  picker.addEventListener("change", () => (location.hash = `#/budgets/${encodeURIComponent(picker.value)}`));
  let stop = () => {};
  knownTenants(ctx).then((tenants) => {
    const tenant = chosen || (ctx.me.tenant !== "*" ? ctx.me.tenant : tenants[0]);
    fill(picker, [...new Set([tenant, ...tenants].filter(Boolean))].map((t) => h("option", { value: t, selected: t === tenant }, t)));
    if (!tenant) {
      fill(body, h("p", { class: "empty" }, "No tenant yet: type one above."));
      return;
    }
    const load = () => showBudget(body, tenant);
    load();
    const reload = debounce(load, 1000);
    stop = ctx.live({ tenant, kind: ["task.queued", "task.succeeded", "task.failed", "task.attempt_failed", "task.cancelled"] }, reload);
  });
  return () => stop();
}

/** The tenants an operator can pick from: those of recent tasks and those the policy names. */
async function knownTenants(ctx) {
  if (ctx.me.tenant !== "*") return [ctx.me.tenant];
  const names = new Set();
  try {
    for (const r of (await get(`/v1/tasks${query({ limit: 500 })}`)).items) names.add(r.tenant);
  } catch {}
  try {
    for (const t of (await get("/v1/policy")).tenants) names.add(t);
  } catch {}
  return [...names].sort();
}

async function showBudget(body, tenant) {
  let ledger;
  try {
    ledger = await get(`/v1/budgets/${encodeURIComponent(tenant)}`);
  } catch (error) {
    fill(body, h("p", { class: error instanceof ApiError && error.status === 404 ? "empty" : "error", role: "alert" }, error instanceof ApiError && error.status === 404 ? `No budget for ${tenant}.` : `Could not read the budget: ${error.message}`));
    return;
  }
  let history = null;
  try {
    history = await get(`/v1/budgets/${encodeURIComponent(tenant)}/history${query({ since: "24h" })}`);
  } catch {}
  const used = ledger.limit_micro_usd ? Math.min(100, ((ledger.spent_micro_usd + ledger.held_micro_usd) / ledger.limit_micro_usd) * 100) : 0;
  fill(
    body,
    h(
      "section",
      { class: "card", "aria-labelledby": "ledger-title", "data-tenant": tenant },
      h("h2", { id: "ledger-title" }, `${tenant}: ${ledger.window} window`),
      h(
        "div",
        { class: "totals" },
        total("Spent", usd(ledger.spent_micro_usd), "spent"),
        total("Held", usd(ledger.held_micro_usd), "held"),
        total("Remaining", usd(ledger.remaining_micro_usd), "remaining"),
        total("Limit", usd(ledger.limit_micro_usd), "limit"),
      ),
      h("div", { class: "meter", role: "meter", "aria-label": "Budget used or held", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(used) }, h("span", { style: { width: `${used.toFixed(1)}%` } })),
      h(
        "dl",
        { class: "record" },
        ledger.window_ends_at ? row("Window ends", time(ledger.window_ends_at)) : null,
        row("Open holds", String(ledger.holds)),
        ledger.task_ceiling_micro_usd ? row("Most per task", usd(ledger.task_ceiling_micro_usd)) : null,
        ledger.carried_micro_usd ? row("Carried over", usd(ledger.carried_micro_usd)) : null,
        ledger.overage_micro_usd ? row("Overage", usd(ledger.overage_micro_usd)) : null,
        ledger.previous ? row("Previous window", `${usd(ledger.previous.spent_micro_usd)} of ${usd(ledger.previous.limit_micro_usd)}`) : null,
      ),
    ),
    h("section", { class: "card", "aria-label": "Spent over time" }, history ? spendChart(history, ledger) : h("p", { class: "muted" }, "No history to chart.")),
    subLimits("Roles", ledger.roles),
    subLimits("Models", ledger.models),
    h("section", { class: "card", "aria-labelledby": "alerts-title" }, h("h2", { id: "alerts-title" }, "Alerts that fired (24 h)"), alerts(history)),
  );
}

function total(name, value, cls) {
  return h("div", { class: `total ${cls}` }, h("span", { class: "name" }, name), h("strong", {}, value));
}

function spendChart(history, ledger) {
  const samples = history.samples || [];
  // The samples, then where the ledger stands now, so the lines reach the present.
  const now = Date.now();
  const points = (field) => [...samples.map((p) => [new Date(p.at).getTime(), (p[field] || 0) / 1e6]), [now, ledger[field] / 1e6]];
  const title = `Spent and held over the last 24 hours (USD)${history.partial ? ", partial" : ""}`;
  return lineChart(
    title,
    [
      { name: "spent", cls: "spent", points: points("spent_micro_usd") },
      { name: "held", cls: "held", points: points("held_micro_usd") },
    ],
    (v) => `$${v.toFixed(v < 10 ? 2 : 0)}`,
    ledger.limit_micro_usd / 1e6,
  );
}

function subLimits(title, scopes) {
  const entries = Object.entries(scopes || {});
  if (!entries.length) return null;
  return h(
    "section",
    { class: "card" },
    h("h2", {}, title),
    h(
      "table",
      {},
      head(["Name", "Spent", "Held", "Limit", "Tokens spent", "Token limit"]),
      h(
        "tbody",
        {},
        entries.map(([name, v]) =>
          h("tr", {}, h("td", {}, name), h("td", { class: "num" }, usd(v.spent_micro_usd)), h("td", { class: "num" }, usd(v.held_micro_usd)), h("td", { class: "num" }, v.limit_micro_usd === null ? "—" : usd(v.limit_micro_usd)), h("td", { class: "num" }, String(v.spent_tokens)), h("td", { class: "num" }, v.limit_tokens === null ? "—" : String(v.limit_tokens))),
        ),
      ),
    ),
  );
}

function alerts(history) {
  const fired = (history && history.alerts) || [];
  if (!fired.length) return h("p", { class: "empty" }, "None.");
  return h(
    "ul",
    { class: "alerts" },
    fired
      .slice()
      .reverse()
      .map((a) => h("li", { "data-kind": a.kind }, time(a.at), " ", h("strong", {}, a.kind.replace("budget.", "").replaceAll("_", " ")), " ", h("span", { class: "muted" }, alertText(a)))),
  );
}

function alertText(a) {
  const parts = [];
  for (const [key, value] of Object.entries(a)) {
    if (["kind", "at", "tenant"].includes(key) || value === null || typeof value === "object") continue;
    parts.push(`${key.replaceAll("_", " ").replace(" micro usd", "")}: ${key.endsWith("micro_usd") ? usd(value) : value}`);
  }
  return parts.join(" · ");
}
