// Workflows: the list, and one workflow's DAG drawn as a graph whose steps change colour as their tasks
// move (live); a step links to its task's page. Pause, resume and cancel where the token may submit.

import { ApiError, debounce, get, query } from "./api.js";
import { badge, fill, h, head, row, time, usd } from "./dom.js";
import { drawGraph, stepList } from "./graph.js";

const ENDED = new Set(["succeeded", "failed", "cancelled"]);

export function render(main, ctx, [id]) {
  return id ? workflowPage(main, ctx, id) : listPage(main, ctx);
}

function listPage(main, ctx) {
  const table = h("div", { "aria-live": "polite" });
  fill(main, h("h1", {}, "Workflows"), table);
  const load = async () => {
    try {
      const page = await get(`/v1/workflows${query({ limit: 100 })}`);
      fill(table, page.items.length ? workflowTable(page.items) : h("p", { class: "empty" }, "No workflow yet."));
    } catch (error) {
      fill(table, h("p", { class: "error", role: "alert" }, `Could not list workflows: ${error.message}`));
    }
  };
  load();
  const reload = debounce(load, 600);
  return ctx.live({ kind: ["task.accepted", "task.succeeded", "task.failed", "task.cancelled", "task.timed_out", "task.rejected"] }, reload);
}

function workflowTable(items) {
  return h(
    "table",
    { class: "workflows" },
    head(["Workflow", "Tenant", "State", "Steps", "Created", "Cost"]),
    h(
      "tbody",
      {},
      items.map((w) =>
        h(
          "tr",
          { "data-workflow": w.id },
          h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, w.id)),
          h("td", {}, w.tenant),
          h("td", {}, badge(w.state)),
          h("td", { class: "num" }, `${w.steps.filter((st) => st.state === "succeeded").length}/${w.steps.length}`),
          h("td", {}, time(w.created_at)),
          h("td", { class: "num" }, usd(w.cost_micro_usd)),
        ),
      ),
    ),
  );
}

function workflowPage(main, ctx, id) {
  const body = h("div", {});
  const graph = h("div", { class: "graph card", "aria-live": "polite" });
  fill(main, h("p", {}, h("a", { href: "#/workflows" }, "← Workflows")), h("h1", {}, "Workflow ", h("code", {}, id)), graph, body);
  let stop = null;
  const load = async () => {
    let record;
    try {
      record = await get(`/v1/workflows/${encodeURIComponent(id)}`);
    } catch (error) {
      fill(graph, h("p", { class: "error", role: "alert" }, error instanceof ApiError && error.status === 404 ? `No workflow ${id} (or not one this token may see).` : `Could not read the workflow: ${error.message}`));
      return;
    }
    await withTaskStates(record);
    fill(graph, drawGraph(record.workflow, record.steps), stepList(record.steps));
    graph.dataset.state = record.state;
    fill(body, summary(record, ctx, load));
    if (!stop) {
      // Live: the events of this workflow's step tasks; each one redraws the graph.
      stop = ctx.live({ tenant: record.tenant, task: record.steps.map((st) => st.task_id) }, reload);
    }
  };
  const reload = debounce(load, 150);
  load();
  return () => stop && stop();
}

const STEP_SETTLED = new Set(["waiting", "skipped", "succeeded", "failed", "rejected", "cancelled", "timed_out"]);

/** The workflow's record folds a step's task state when it ends; a step under way shows its task's own
 * state (queued, running, awaiting approval), read from the task. Changes `record` in place. */
async function withTaskStates(record) {
  const moving = record.steps.filter((st) => !STEP_SETTLED.has(st.state));
  const tasks = await Promise.all(moving.map((st) => get(`/v1/tasks/${encodeURIComponent(st.task_id)}`).catch(() => null)));
  moving.forEach((st, i) => {
    if (tasks[i]) st.state = tasks[i].state;
  });
}

function summary(record, ctx, reload) {
  const acts = [];
  if (!ENDED.has(record.state) && ctx.may("submit", record.tenant)) {
    if (record.state === "paused") acts.push(h("button", { type: "button", onclick: () => act(record, "resume", ctx, reload) }, "Resume"));
    else acts.push(h("button", { type: "button", class: "quiet", onclick: () => act(record, "pause", ctx, reload) }, "Pause"));
    acts.push(h("button", { type: "button", class: "reject", onclick: () => act(record, "cancel", ctx, reload) }, "Cancel workflow"));
  }
  return [
    h(
      "section",
      { class: "card" },
      h("p", {}, badge(record.state), record.reason ? ` ${record.reason}` : ""),
      h(
        "dl",
        { class: "record" },
        row("Tenant", record.tenant),
        row("Created", time(record.created_at)),
        record.finished_at ? row("Finished", time(record.finished_at)) : null,
        row("Cost", usd(record.cost_micro_usd)),
        record.escrow_micro_usd ? row("Escrow held", usd(record.escrow_micro_usd)) : null,
        record.cancelled_by ? row("Cancelled by", record.cancelled_by) : null,
      ),
      acts.length ? h("p", { class: "buttons" }, acts) : null,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Steps"),
      h(
        "table",
        { class: "steps" },
        head(["Step", "State", "Attempts", "Cost", "Error"]),
        h(
          "tbody",
          {},
          record.steps.map((st) =>
            h(
              "tr",
              {},
              h("td", {}, st.state === "waiting" || st.state === "skipped" ? st.name : h("a", { href: `#/tasks/${encodeURIComponent(st.task_id)}` }, st.name)),
              h("td", {}, badge(st.state)),
              h("td", { class: "num" }, String(st.attempts)),
              h("td", { class: "num" }, usd(st.cost_micro_usd)),
              h("td", {}, st.error || ""),
            ),
          ),
        ),
      ),
    ),
  ];
}

const ACTIONS = {
  pause: { words: "Pause", done: "Paused", text: "No new step starts until it is resumed." },
  resume: { words: "Resume", done: "Resumed", text: "Its steps start again." },
  cancel: { words: "Cancel", done: "Cancelled", text: "Steps not ended are cancelled; what they held is released." },
};

async function act(record, action, ctx, reload) {
  const { words, done, text } = ACTIONS[action];
  await ctx.act({
    title: `${words} workflow ${record.id}?`,
    text,
    action: words,
    path: `/v1/workflows/${encodeURIComponent(record.id)}/${action}`,
    done: () => `${done} ${record.id}.`,
    what: `${action} ${record.id}`,
  });
  reload();
}
