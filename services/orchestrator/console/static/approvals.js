// The approvals inbox: every task awaiting a human's decision that the token may see, oldest first, with
// what the guard found (rules, places, masked evidence: never a secret) and the time left before the
// approval times out. Approve or reject in one click and a confirmation; the first decision counts.

import { ApiError, debounce, get, post, query } from "./api.js";
import { fill, h, head, relative, time } from "./dom.js";

const WATCHED = ["task.awaiting_approval", "task.queued", "task.rejected", "task.cancelled", "task.timed_out"];

export function render(main, ctx) {
  const list = h("div", { class: "inbox", "aria-live": "polite", "aria-busy": "true" });
  fill(
    main,
    h("h1", {}, "Approvals"),
    h("p", { class: "muted" }, "Tasks the guard parked for a person to decide, oldest first. The first decision counts."),
    list,
  );
  let shown = [];
  const parked = new Map(); // what parked each task never changes: read once
  const load = async () => {
    list.setAttribute("aria-busy", "true");
    try {
      const page = await get(`/v1/tasks${query({ state: "awaiting_approval", limit: 500 })}`);
      const waiting = page.items.sort((a, b) => a.created_at.localeCompare(b.created_at));
      const unread = waiting.filter((record) => !parked.has(record.id));
      const read = await Promise.all(unread.map((record) => parkedBy(record)));
      unread.forEach((record, i) => read[i] && parked.set(record.id, read[i]));
      shown = waiting.map((record) => ({ record, parked: parked.get(record.id) ?? null }));
      draw();
    } catch (error) {
      fill(list, h("p", { class: "error", role: "alert" }, `Could not read the inbox: ${error.message}`));
    }
    list.setAttribute("aria-busy", "false");
  };
  const draw = () => {
    const count = document.getElementById("approvals-count");
    count.textContent = shown.length ? String(shown.length) : "";
    if (!shown.length) {
      fill(list, h("p", { class: "empty" }, "Nothing awaits approval."));
      return;
    }
    fill(list, shown.map(({ record, parked }) => card(record, parked, ctx, load)));
  };
  load();
  const reload = debounce(load, 250);
  const stopLive = ctx.live({ kind: WATCHED }, reload);
  const tick = setInterval(draw, 15000); // the time left, as it runs out
  return () => {
    stopLive();
    clearInterval(tick);
  };
}

/** The AwaitingApproval event that parked a task: its decision, reason and deadline. */
async function parkedBy(record) {
  try {
    const events = await get(`/v1/tasks/${encodeURIComponent(record.id)}/events`);
    return events.filter((e) => e.kind === "task.awaiting_approval").pop() || null;
  } catch {
    return null;
  }
}

function card(record, parked, ctx, reload) {
  const decision = parked ? parked.decision : null;
  const violations = decision ? decision.violations : [];
  const labels = Object.entries(record.labels || {}).map(([k, v]) => h("span", { class: "label" }, `${k}: ${v}`));
  const expires = parked && parked.expires_at;
  const actions = ctx.may("approve", record.tenant)
    ? h(
        "p",
        { class: "buttons" },
        h("button", { type: "button", class: "approve", onclick: () => decide(record, true, ctx, reload), "aria-label": `Approve task ${record.id}` }, "Approve"),
        h("button", { type: "button", class: "reject", onclick: () => decide(record, false, ctx, reload), "aria-label": `Reject task ${record.id}` }, "Reject"),
      )
    : h("p", { class: "muted" }, "This token may not decide (it needs the approve scope).");
  return h(
    "article",
    { class: "card approval", "data-task": record.id, "aria-labelledby": `t-${record.id}` },
    h(
      "header",
      {},
      h("h2", { id: `t-${record.id}` }, h("a", { href: `#/tasks/${encodeURIComponent(record.id)}` }, record.id)),
      h("span", { class: "meta" }, `${record.tenant} · ${record.role || "?"}`, " · waiting since ", time(record.created_at)),
    ),
    labels.length ? h("p", { class: "labels" }, labels) : null,
    h(
      "p",
      { class: expires && new Date(expires) - Date.now() < 300000 ? "deadline soon" : "deadline" },
      expires ? ["Times out ", h("strong", {}, relative(expires)), " (", time(expires), ") unless decided."] : "No approval time-out.",
    ),
    parked && parked.reason ? h("p", {}, parked.reason) : null,
    violations.length ? findings(violations) : h("p", { class: "muted" }, "The guard named no rule."),
    decision ? h("p", { class: "muted small" }, `Policy ${decision.policy_version} · ${decision.policy_hash.slice(0, 12)} · estimate $${(decision.estimate_micro_usd / 1e6).toFixed(4)}`) : null,
    actions,
  );
}

/** What the guard found, as a table: rule, severity, where, masked evidence, what it means. */
export function findings(violations) {
  return h(
    "table",
    { class: "findings" },
    h("caption", {}, "What the guard found"),
    head(["Rule", "Severity", "Where", "Evidence (masked)", "Why"]),
    h(
      "tbody",
      {},
      violations.map((v) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", {}, v.rule_id), v.enforced === false ? " (audit)" : ""),
          h("td", {}, h("span", { class: `severity ${v.severity}` }, v.severity)),
          h("td", {}, h("code", {}, v.location || "—")),
          h("td", {}, h("code", {}, v.evidence || "—")),
          h("td", {}, v.message || "", v.fix ? h("div", { class: "muted small" }, `Fix: ${v.fix}`) : null),
        ),
      ),
    ),
  );
}

async function decide(record, approved, ctx, reload) {
  const verb = approved ? "Approve" : "Reject";
  const reason = await ctx.confirm({
    title: `${verb} task ${record.id}?`,
    text: approved ? `It runs for ${record.tenant} as ${record.role}, with its budget held.` : "It will not run; the requester sees your reason.",
    action: verb,
    needsReason: !approved,
  });
  if (reason === null) return;
  try {
    const answer = await post(`/v1/tasks/${encodeURIComponent(record.id)}/${approved ? "approve" : "reject"}`, { reason });
    ctx.notify(`${approved ? "Approved" : "Rejected"} ${answer.id} as ${answer.by}.`, "ok");
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      ctx.notify(await decidedBy(record.id), "warn");
    } else {
      ctx.notify(`Could not ${verb.toLowerCase()} ${record.id}: ${error.message}`, "error");
    }
  }
  reload();
}

/** Who decided a task first, for a person who came second. */
async function decidedBy(id) {
  try {
    const now = await get(`/v1/tasks/${encodeURIComponent(id)}`);
    if (now.approved_by) return `Task ${id} was already approved by ${now.approved_by}.`;
    if (now.rejected_by) return `Task ${id} was already rejected by ${now.rejected_by}.`;
    return `Task ${id} was decided already: it is ${now.state.replaceAll("_", " ")}.`;
  } catch {
    return `Task ${id} was decided already.`;
  }
}
