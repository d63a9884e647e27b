// Tasks: a filtered list that updates live, and one task's page (record, timeline, guard decision, budget
// held and charged, output and artifacts) with cancel where the lifecycle allows it.

import { ApiError, debounce, get, query, token } from "./api.js";
import { badge, ended, fill, h, head, relative, row, time, usd } from "./dom.js";
import { findings } from "./approvals.js";

const STATES = ["awaiting_approval", "queued", "running", "retrying", "succeeded", "failed", "rejected", "cancelled", "timed_out"];
const SINCE = { "": "any time", "15m": "last 15 minutes", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days" };

export function render(main, ctx, [id]) {
  return id ? taskPage(main, ctx, id) : listPage(main, ctx);
}

function listPage(main, ctx) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const field = (name, label, control) => h("div", { class: "field" }, h("label", { for: `f-${name}` }, label), control);
  const tenant = h("input", { id: "f-tenant", name: "tenant", value: params.get("tenant") || "", placeholder: "every tenant", size: 12 });
  const state = h("select", { id: "f-state", name: "state" }, h("option", { value: "" }, "any state"), STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s.replaceAll("_", " "))));
  const role = h("input", { id: "f-role", name: "role", value: params.get("role") || "", placeholder: "any role", size: 12 });
  const label = h("input", { id: "f-label", name: "label", value: params.get("label") || "", placeholder: "key:value", size: 14 });
  const since = h("select", { id: "f-since", name: "since" }, Object.entries(SINCE).map(([v, t]) => h("option", { value: v, selected: (params.get("since") || "") === v }, t)));
  if (ctx.me.tenant !== "*") {
    tenant.value = ctx.me.tenant;
    tenant.disabled = true;
  }
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter tasks" },
    field("tenant", "Tenant", tenant),
    field("state", "State", state),
    field("role", "Role", role),
    field("label", "Label", label),
    field("since", "Created", since),
    h("button", { type: "submit" }, "Filter"),
  );
  const table = h("div", { "aria-live": "polite" });
  const more = h("p", {});
  fill(main, h("h1", {}, "Tasks"), form, table, more);
  let cursor = null;
  let rows = [];
  const filters = () => ({
    tenant: tenant.disabled ? "" : tenant.value.trim(),
    state: state.value,
    role: role.value.trim(),
    label: label.value.trim(),
    since: since.value,
  });
  const load = async (append = false) => {
    try {
      const page = await get(`/v1/tasks${query({ ...filters(), limit: 100, cursor: append ? cursor : "" })}`);
      rows = append ? rows.concat(page.items) : page.items;
      cursor = page.next_cursor;
      fill(table, taskTable(rows));
      fill(more, cursor ? h("button", { type: "button", class: "quiet", onclick: () => load(true) }, "More") : null);
    } catch (error) {
      fill(table, h("p", { class: "error", role: "alert" }, `Could not list tasks: ${error.message}`));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const kept = Object.entries(filters()).filter(([, v]) => v);
    history.replaceState(null, "", `#/tasks${kept.length ? `?${new URLSearchParams(kept)}` : ""}`);
    load();
  });
  load();
  const reload = debounce(() => load(), 400);
  return ctx.live({ tenant: filters().tenant }, (kind) => {
    if (kind !== "task.heartbeat" && kind !== "task.timer_fired") reload();
  });
}

/** A table of task records, newest first. */
export function taskTable(records) {
  if (!records.length) return h("p", { class: "empty" }, "No task matches.");
  return h(
    "table",
    { class: "tasks" },
    head(["Task", "Tenant", "Role", "State", "Created", "Cost"]),
    h(
      "tbody",
      {},
      records.map((r) =>
        h(
          "tr",
          { "data-task": r.id },
          h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(r.id)}` }, r.id)),
          h("td", {}, r.tenant),
          h("td", {}, r.role || "—"),
          h("td", {}, badge(r.state)),
          h("td", {}, time(r.created_at)),
          h("td", { class: "num" }, usd(r.cost_micro_usd)),
        ),
      ),
    ),
  );
}

function taskPage(main, ctx, id) {
  const path = `/v1/tasks/${encodeURIComponent(id)}`;
  const body = h("div", { "aria-live": "polite" });
  fill(main, h("p", {}, h("a", { href: "#/tasks" }, "← Tasks")), h("h1", {}, "Task ", h("code", {}, id)), body);
  let record = null;
  const load = async () => {
    try {
      const [now, events] = await Promise.all([get(path), get(`${path}/events`).catch(() => [])]);
      record = now;
      fill(body, taskView(record, events, ctx, load));
    } catch (error) {
      fill(body, h("p", { class: "error", role: "alert" }, error instanceof ApiError && error.status === 404 ? `No task ${id} (or not one this token may see).` : `Could not read the task: ${error.message}`));
    }
  };
  load();
  const reload = debounce(load, 200);
  let stop = () => {};
  // Live once the tenant is known: the stream of this one task.
  const started = setInterval(() => {
    if (!record) return;
    clearInterval(started);
    stop = ctx.live({ tenant: record.tenant, task: record.id }, reload);
  }, 100);
  return () => {
    clearInterval(started);
    stop();
  };
}

function taskView(record, events, ctx, reload) {
  const decision = events.map((e) => e.decision).filter(Boolean).pop();
  const actions = [];
  if (!ended(record.state) && ctx.may("submit", record.tenant)) {
    if (record.state === "queued" && record.next_retry_at && new Date(record.next_retry_at) > Date.now()) {
      actions.push(h("button", { type: "button", onclick: () => retryNow(record, ctx, reload) }, "Retry now"));
    }
    actions.push(h("button", { type: "button", class: "reject", onclick: () => cancel(record, ctx, reload) }, "Cancel task"));
  }
  // A workflow's step is `<workflow>-<step>`; any other parent is the task that planned this one.
  const parent = record.parent;
  const inWorkflow = parent && record.id.startsWith(`${parent}-`);
  return [
    h(
      "section",
      { class: "card", "aria-label": "Record" },
      h("p", {}, badge(record.state), " ", record.reason ? h("span", {}, record.reason) : null),
      h(
        "dl",
        { class: "record" },
        row("Tenant", record.tenant),
        row("Role", record.role || "—"),
        row("Model", record.model || "—"),
        row("Created", time(record.created_at)),
        row("Updated", time(record.updated_at), " (", relative(record.updated_at), ")"),
        record.started_at ? row("Started", time(record.started_at)) : null,
        record.finished_at ? row("Finished", time(record.finished_at)) : null,
        row("Attempts", String(record.attempts)),
        record.next_retry_at && !ended(record.state) ? row("Next attempt", time(record.next_retry_at), " (", relative(record.next_retry_at), ")") : null,
        record.worker ? row("Worker", record.worker) : null,
        parent ? row(inWorkflow ? "Step of workflow" : "Planned by", h("a", { href: `#/${inWorkflow ? "workflows" : "tasks"}/${encodeURIComponent(parent)}` }, parent)) : null,
        record.approved_by ? row("Approved by", `${record.approved_by}${record.approval_reason ? `: ${record.approval_reason}` : ""}`) : null,
        record.rejected_by ? row("Rejected by", record.rejected_by) : null,
        record.cancelled_by ? row("Cancelled by", record.cancelled_by) : null,
        Object.keys(record.labels || {}).length ? row("Labels", Object.entries(record.labels).map(([k, v]) => h("span", { class: "label" }, `${k}: ${v}`))) : null,
        record.trace_id ? row("Trace", h("code", {}, record.trace_id)) : null,
      ),
      actions.length ? h("p", { class: "buttons" }, actions) : null,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "budget-title" },
      h("h2", { id: "budget-title" }, "Budget"),
      h(
        "dl",
        { class: "record" },
        row("Held (per attempt)", usd(record.estimate_micro_usd)),
        row("Charged", usd(record.cost_micro_usd)),
        record.usage ? row("Usage", `${record.usage.input_tokens} in + ${record.usage.output_tokens} out tokens of ${record.usage.model}`) : null,
        record.reservation_id ? row("Hold", h("code", {}, record.reservation_id)) : null,
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "guard-title" },
      h("h2", { id: "guard-title" }, "Guard decision"),
      decision
        ? [
            h("p", {}, "Verdict ", h("strong", {}, decision.verdict), ` under policy ${decision.policy_version} (${decision.policy_hash.slice(0, 12)})`),
            decision.violations.length ? findings(decision.violations) : h("p", { class: "muted" }, "No rule fired."),
          ]
        : h("p", { class: "muted" }, "Not judged yet."),
      record.rails && record.rails.length ? [h("h3", {}, "Output rails"), findings(record.rails)] : null,
    ),
    record.output || record.error || (record.artifacts || []).length
      ? h(
          "section",
          { class: "card", "aria-labelledby": "output-title" },
          h("h2", { id: "output-title" }, "Output"),
          record.error ? h("p", { class: "error" }, record.error) : null,
          record.output ? h("pre", { class: "output" }, record.output) : null,
          (record.artifacts || []).length
            ? h(
                "ul",
                { class: "artifacts", "aria-label": "Artifacts" },
                record.artifacts.map((a, i) => h("li", {}, h("button", { type: "button", class: "link", onclick: () => download(record, i) }, a.name.split("/").slice(2).join("/") || a.name), ` (${a.size} bytes)`)),
              )
            : null,
        )
      : null,
    h("section", { class: "card", "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline(events)),
  ];
}

function timeline(events) {
  if (!events.length) return h("p", { class: "muted" }, "No events yet.");
  return h(
    "ol",
    { class: "timeline" },
    events.map((e) =>
      h(
        "li",
        { "data-kind": e.kind },
        time(e.at),
        " ",
        h("strong", {}, e.kind.replace("task.", "").replaceAll("_", " ")),
        " ",
        h("span", { class: "muted" }, summary(e)),
      ),
    ),
  );
}

function summary(e) {
  const parts = [];
  if (e.worker) parts.push(`by ${e.worker}`);
  if (e.by) parts.push(`by ${e.by}`);
  if (e.attempt && e.kind !== "task.heartbeat") parts.push(`attempt ${e.attempt}`);
  if (e.decision) parts.push(`verdict ${e.decision.verdict}`);
  if (e.cost_micro_usd) parts.push(usd(e.cost_micro_usd));
  if (e.error) parts.push(e.error);
  if (e.reason) parts.push(e.reason);
  if (e.timer) parts.push(`timer ${e.timer}`);
  return parts.join(" · ");
}

async function download(record, index) {
  const response = await fetch(`/v1/tasks/${encodeURIComponent(record.id)}/artifacts/${index}`, { headers: token() ? { Authorization: `Bearer ${token()}` } : {} });
  if (!response.ok) return;
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: record.artifacts[index].name.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function retryNow(record, ctx, reload) {
  await ctx.act({
    title: `Retry task ${record.id} now?`,
    text: `Its attempt ${record.attempts + 1} runs now instead of ${relative(record.next_retry_at)}.`,
    action: "Retry now",
    path: `/v1/tasks/${encodeURIComponent(record.id)}/retry`,
    done: (answer) => `Attempt ${answer.attempt} of ${record.id} runs now.`,
    what: `retry ${record.id}`,
  });
  reload();
}

async function cancel(record, ctx, reload) {
  await ctx.act({
    title: `Cancel task ${record.id}?`,
    text: "It will not run, or it is stopped; what it held is released.",
    action: "Cancel task",
    path: `/v1/tasks/${encodeURIComponent(record.id)}/cancel`,
    done: () => `Cancelled ${record.id}.`,
    what: `cancel ${record.id}`,
  });
  reload();
}
