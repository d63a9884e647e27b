// Policy: the bundle in force (version, hash, who pushed it when, the tenants with their own rules) and
// the guard's decisions over time, by verdict and by rule.

import { ApiError, get, query } from "./api.js";
import { fill, h, head, row, time } from "./dom.js";
import { barChart } from "./chart.js";

const VERDICTS = ["allow", "redact", "approve", "deny"];

export function render(main, ctx) {
  const bundle = h("section", { class: "card", "aria-labelledby": "bundle-title" });
  const decisions = h("section", { class: "card", "aria-labelledby": "decisions-title" });
  fill(main, h("h1", {}, "Policy"), bundle, decisions);
  showBundle(bundle, ctx);
  showDecisions(decisions, ctx);
  const tick = setInterval(() => showDecisions(decisions, ctx), 30000);
  return () => clearInterval(tick);
}

async function showBundle(section, ctx) {
  if (!ctx.me.operator && ctx.me.auth !== false) {
    fill(section, h("h2", { id: "bundle-title" }, "Bundle in force"), h("p", { class: "muted" }, "Only an operator's token reads the bundle itself."));
    return;
  }
  try {
    const p = await get("/v1/policy");
    fill(
      section,
      h("h2", { id: "bundle-title" }, "Bundle in force"),
      h(
        "dl",
        { class: "record" },
        row("Version", h("strong", {}, p.version)),
        row("Hash", h("code", {}, p.hash)),
        row("Source", p.source === "pushed" ? `pushed (revision ${p.revision})` : "shipped with Maestro"),
        row("Pushed by", p.pushed_by || "—"),
        row("Pushed at", time(p.pushed_at)),
        row("Tenants with their own rules", p.tenants.length ? p.tenants.join(", ") : "none"),
      ),
      h("details", {}, h("summary", {}, "The bundle (YAML)"), h("pre", { class: "output" }, p.yaml)),
    );
  } catch (error) {
    fill(section, h("h2", { id: "bundle-title" }, "Bundle in force"), h("p", { class: "error" }, `Could not read the policy: ${error.message}`));
  }
}

const TOP_RULES = 5;

/** The rules that fired most, stacked per step over time (the others summed as "other rules"). */
function rulesOverTime(history, rules) {
  const top = rules.slice(0, TOP_RULES).map(([rule]) => rule);
  const names = [...top, "other rules"];
  const bars = (history.points || []).map((p) => {
    const parts = {};
    for (const [rule, n] of Object.entries(p.rules || {})) {
      const name = top.includes(rule) ? rule : "other rules";
      parts[name] = (parts[name] || 0) + n;
    }
    return { t: new Date(p.at).getTime(), parts };
  });
  const used = names.filter((name) => bars.some((b) => b.parts[name]));
  if (!used.length) return null;
  return barChart("Rules that fired, over time", bars, used, (name) => `rule-${names.indexOf(name)}`);
}

async function showDecisions(section, ctx) {
  let history;
  try {
    history = await get(`/v1/policy/decisions${query({ since: "24h" })}`);
  } catch (error) {
    fill(section, h("h2", { id: "decisions-title" }, "Decisions"), h("p", { class: "error" }, error instanceof ApiError ? error.message : String(error)));
    return;
  }
  const bars = (history.points || []).map((p) => ({ t: new Date(p.at).getTime(), parts: p.verdicts || {} }));
  const rules = Object.entries(history.rules || {}).sort((a, b) => b[1] - a[1]);
  const verdicts = history.verdicts || {};
  fill(
    section,
    h("h2", { id: "decisions-title" }, "Decisions over the last 24 hours"),
    h("p", { class: "totals" }, VERDICTS.map((v) => h("span", { class: `total ${v}` }, h("span", { class: "name" }, v), " ", h("strong", {}, String(verdicts[v] || 0))))),
    barChart(`Decisions by verdict${history.partial ? " (partial)" : ""}`, bars, VERDICTS),
    rulesOverTime(history, rules),
    h("h3", {}, "Rules that fired"),
    rules.length
      ? h(
          "table",
          { class: "rules" },
          head(["Rule", "Decisions"]),
          h("tbody", {}, rules.map(([rule, n]) => h("tr", {}, h("td", {}, h("code", {}, rule)), h("td", { class: "num" }, String(n))))),
        )
      : h("p", { class: "empty" }, "No rule fired."),
  );
}
