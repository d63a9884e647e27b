// My work: the human queues' tasks this person may claim or holds (GET /v1/inbox), and one task as its
// person needs it: instructions, inputs, what the guard found, and its form. Claim, answer, release.

import { ApiError, debounce, get, post } from "./api.js";
import { badge, fill, h, relative, row, time } from "./dom.js";
import { findings } from "./approvals.js";
import { defaultOf } from "./schema.js";

const WATCHED = ["task.queued", "task.claimed", "task.released", "task.succeeded", "task.escalated", "task.cancelled", "task.timed_out", "task.failed", "task.handed_off"];

export function render(main, ctx, [id]) {
  return id ? workPage(main, ctx, id) : inboxPage(main, ctx);
}

function inboxPage(main, ctx) {
  const list = h("div", { "aria-live": "polite" });
  fill(main, h("h1", {}, "My work"), h("p", { class: "muted" }, "Tasks of the human queues you serve: waiting to be claimed, or yours."), list);
  const load = async () => {
    try {
      const records = await get("/v1/inbox");
      fill(list, records.length ? records.map((r) => card(r, ctx, load)) : h("p", { class: "empty" }, "Nothing waits for you."));
    } catch (error) {
      fill(list, h("p", { class: "error", role: "alert" }, error instanceof ApiError && error.status === 403 ? "This token does no human work (it needs the work scope)." : `Could not read your work: ${error.message}`));
    }
  };
  load();
  return updates(ctx, load);
}

/**
 * Live updates while the page shows: the events stream when the token may read its tenant's events, else
 * (a token that only does human work) the inbox read again every POLL_MS.
 */
const POLL_MS = 10000;
function updates(ctx, load) {
  if (ctx.may("read", ctx.me.tenant)) return ctx.live({ kind: WATCHED }, debounce(load, 300));
  const timer = setInterval(load, POLL_MS);
  return () => clearInterval(timer);
}

function mine(record, ctx) {
  return record.state === "running" && record.worker === ctx.me.subject;
}

function card(record, ctx, reload) {
  const open = h("a", { href: `#/work/${encodeURIComponent(record.id)}` }, record.id);
  return h(
    "article",
    { class: "card approval", "data-task": record.id },
    h("header", {}, h("h2", {}, open), h("span", { class: "meta" }, `${record.tenant} · ${record.role} · since `, time(record.created_at))),
    h("p", {}, badge(record.state === "running" ? "claimed" : "waiting"), record.state === "running" ? ` by ${record.worker}, until ${relative(record.lease_until)}` : ""),
    h(
      "p",
      { class: "buttons" },
      record.state === "queued" ? h("button", { type: "button", onclick: () => claim(record, ctx, reload), "aria-label": `Claim task ${record.id}` }, "Claim") : null,
      mine(record, ctx) ? h("a", { class: "button", href: `#/work/${encodeURIComponent(record.id)}` }, "Answer") : null,
    ),
  );
}

async function claim(record, ctx, reload) {
  try {
    await post(`/v1/tasks/${encodeURIComponent(record.id)}/claim`, {});
    ctx.notify(`You hold ${record.id}.`, "ok");
    location.hash = `#/work/${encodeURIComponent(record.id)}`;
  } catch (error) {
    ctx.notify(`Could not claim ${record.id}: ${error.message}`, "error");
    reload();
  }
}

function workPage(main, ctx, id) {
  const body = h("div", { "aria-live": "polite" });
  fill(main, h("p", {}, h("a", { href: "#/work" }, "← My work")), h("h1", {}, "Task ", h("code", {}, id)), body);
  const load = async () => {
    try {
      fill(body, workView(await get(`/v1/inbox/${encodeURIComponent(id)}`), ctx, load));
    } catch (error) {
      fill(body, h("p", { class: "error", role: "alert" }, error.message));
    }
  };
  load();
  return updates(ctx, load);
}

function workView(view, ctx, reload) {
  const { record, request } = view;
  const holding = mine(record, ctx);
  const form = (request && request.human && request.human.form) || defaultOf("HumanWork", "form");
  return [
    h(
      "section",
      { class: "card" },
      h("p", {}, badge(record.state), record.worker ? ` ${record.worker}` : "", record.lease_until ? [" · lease ends ", relative(record.lease_until)] : ""),
      h("dl", { class: "record" }, row("Tenant", record.tenant), row("Queue", record.role), row("Waiting since", time(record.created_at))),
      record.state === "queued" ? h("p", { class: "buttons" }, h("button", { type: "button", onclick: () => claim(record, ctx, reload) }, "Claim")) : null,
    ),
    request ? h("section", { class: "card" }, h("h2", {}, "Instructions"), h("pre", { class: "output" }, request.prompt)) : h("p", { class: "muted" }, "The request is no longer kept."),
    request && request.context.length
      ? h("section", { class: "card" }, h("h2", {}, "Inputs"), request.context.map((f) => h("details", {}, h("summary", {}, f.path), h("pre", { class: "output" }, f.content))))
      : null,
    view.findings.length ? h("section", { class: "card" }, findings(view.findings)) : null,
    holding ? answerForm(record, form, ctx, reload) : null,
  ];
}

/** The task's form as HTML controls, and its answer sent as the API takes it. */
function answerForm(record, form, ctx, reload) {
  const controls = form.fields.map((field) => control(field));
  const element = h(
    "form",
    { class: "card", "aria-labelledby": "answer-title" },
    h("h2", { id: "answer-title" }, "Your answer"),
    controls.map((c) => c.element),
    h(
      "p",
      { class: "buttons" },
      h("button", { type: "submit" }, "Send the answer"),
      h("button", { type: "button", class: "quiet", onclick: () => release(record, ctx, reload) }, "Release it"),
    ),
  );
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = {};
    for (const c of controls) {
      const value = await c.value();
      if (value !== undefined) answer[c.name] = value;
    }
    try {
      await post(`/v1/tasks/${encodeURIComponent(record.id)}/complete`, { answer });
      ctx.notify(`Answered ${record.id}.`, "ok");
      location.hash = "#/work";
    } catch (error) {
      ctx.notify(`Not sent: ${error.message}`, "error");
    }
  });
  return element;
}

function control(field) {
  const id = `answer-${field.name}`;
  const label = h("label", { for: id }, field.label || field.name, field.required ? "" : " (optional)");
  if (field.kind === "approval") {
    const yes = h("input", { type: "radio", name: id, id: `${id}-yes`, value: "yes", required: field.required });
    const no = h("input", { type: "radio", name: id, id: `${id}-no`, value: "no" });
    return {
      name: field.name,
      element: h("fieldset", { class: "field" }, h("legend", {}, field.label || field.name), yes, h("label", { for: `${id}-yes`, class: "inline" }, "Yes"), no, h("label", { for: `${id}-no`, class: "inline" }, "No")),
      value: async () => (yes.checked ? true : no.checked ? false : undefined),
    };
  }
  if (field.kind === "choice") {
    const select = h("select", { id, required: field.required }, h("option", { value: "" }, "—"), field.choices.map((c) => h("option", { value: c }, c)));
    return { name: field.name, element: h("div", { class: "field" }, label, select), value: async () => select.value || undefined };
  }
  if (field.kind === "file") {
    const input = h("input", { id, type: "file", required: field.required });
    const read = async () => {
      const file = input.files[0];
      return file ? { name: file.name, content: await file.text() } : undefined;
    };
    return { name: field.name, element: h("div", { class: "field" }, label, input), value: read };
  }
  const text = h("textarea", { id, rows: 4, required: field.required });
  return { name: field.name, element: h("div", { class: "field" }, label, text), value: async () => text.value || undefined };
}

async function release(record, ctx, reload) {
  const released = await ctx.act({
    title: `Release task ${record.id}?`,
    text: "It goes back to its queue for someone else.",
    action: "Release",
    path: `/v1/tasks/${encodeURIComponent(record.id)}/release`,
    done: () => `Released ${record.id}.`,
    what: `release ${record.id}`,
  });
  if (released) location.hash = "#/work";
  else reload();
}
