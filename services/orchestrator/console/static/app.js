// The console's shell: sign-in, who the token is, the page router (#/page/...), live status and the
// confirmation dialog every action goes through.

import { ApiError, follow, get, post, setToken, token } from "./api.js";
import { fill, h } from "./dom.js";
import { loadSchemas } from "./schema.js";
import * as approvals from "./approvals.js";
import * as budgets from "./budgets.js";
import * as policy from "./policy.js";
import * as tasks from "./tasks.js";
import * as work from "./work.js";
import * as workflows from "./workflows.js";

const PAGES = { approvals, work, tasks, workflows, budgets, policy };
const main = document.getElementById("main");
let leave = () => {};
let identity = null;

/** What a page is given: who is signed in and what they may do, live events, notices, confirmation. */
const context = {
  get me() {
    return identity;
  },
  /** Whether the token may act with `scope` in `tenant` (admin covers every scope), as the API decides. */
  may(scope, tenant) {
    if (!identity) return false;
    const sees = identity.tenant === "*" || identity.tenant === tenant;
    return sees && (identity.scopes.includes(scope) || identity.scopes.includes("admin"));
  },
  notify,
  confirm: confirmAction,
  act,
  /** Follow the API's events while the page shows; `onEvent(kind, event)`. */
  live(params, onEvent) {
    const stop = new AbortController();
    const shown = document.getElementById("live");
    follow(params, onEvent, stop.signal, (state) => {
      shown.textContent = state === "live" ? "● live" : state === "refused" ? "not live" : "reconnecting…";
      shown.className = `live ${state}`;
    });
    return () => stop.abort();
  },
};

/** A short message in the notice area (announced to screen readers). */
export function notify(message, kind = "info") {
  const notice = document.getElementById("notice");
  fill(notice, h("p", { class: kind }, message));
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => notice.replaceChildren(), 8000);
}

/**
 * Ask before acting: resolves to the reason typed ("" allowed unless `needsReason`), or null when the
 * person went back.
 */
function confirmAction({ title, text, action, needsReason = false, reasonLabel = "Reason" }) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-reason-label").textContent = needsReason ? `${reasonLabel} (required)` : `${reasonLabel} (optional)`;
  const reason = document.getElementById("confirm-reason");
  reason.value = "";
  reason.required = needsReason;
  document.getElementById("confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  reason.focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? reason.value.trim() : null),
      { once: true },
    );
  });
}

/**
 * An action a person confirms first: ask (`title`, `text`, the button's `action`), then POST the reason
 * given to `path`; `done(answer)` is the notice when it worked, `what` names it in the one when it did not.
 * Resolves to the answer, or null when the person went back or the API refused.
 */
async function act({ title, text, action, path, done, what }) {
  const reason = await confirmAction({ title, text, action });
  if (reason === null) return null;
  try {
    const answer = await post(path, { reason });
    notify(done(answer), "ok");
    return answer;
  } catch (error) {
    notify(`Could not ${what}: ${error.message}`, "error");
    return null;
  }
}

function signInPage(message) {
  document.getElementById("sign-out").hidden = true;
  document.getElementById("identity").textContent = "";
  const field = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("p", {}, "Paste an API token (", h("code", {}, "maestro token create"), ", or the file ", h("code", {}, ".maestro/api.token"), " that ", h("code", {}, "maestro up"), " wrote). It stays in this tab only."),
    h("label", { for: "token" }, "Token"),
    field,
    h("p", { class: "buttons" }, h("button", { type: "submit" }, "Sign in")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(field.value.trim());
    start();
  });
  fill(main, form);
  field.focus();
}

async function start() {
  // A link may bring the token in its fragment (#token=...): kept, then taken out of the address bar.
  const brought = new URLSearchParams(location.hash.slice(1)).get("token");
  if (brought) {
    setToken(brought);
    history.replaceState(null, "", `${location.pathname}#/approvals`);
  }
  try {
    await loadSchemas();
    identity = await get("/v1/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const tried = token();
      setToken("");
      signInPage(tried ? "That token was refused." : "");
      return;
    }
    fill(main, h("p", { class: "error", role: "alert" }, `Maestro did not answer: ${error.message}`));
    return;
  }
  const who = identity.auth !== false ? `${identity.subject} · ${identity.tenant === "*" ? "every tenant" : identity.tenant} · ${identity.scopes.join(", ")}` : "no sign-in needed (auth off)";
  document.getElementById("identity").textContent = who;
  document.getElementById("sign-out").hidden = identity.auth === false;
  // Human work is for people: a token with the work scope (an operator's covers it too).
  document.getElementById("work-link").hidden = !(identity.scopes.includes("work") || identity.scopes.includes("admin"));
  route();
}

function route() {
  if (!identity) return;
  const [name = "approvals", ...rest] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = PAGES[name] || approvals;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  leave();
  const live = document.getElementById("live");
  live.textContent = "";
  fill(main, h("p", { class: "muted" }, "Loading…"));
  leave = page.render(main, context, rest) || (() => {});
  main.focus({ preventScroll: true });
}

document.getElementById("sign-out").addEventListener("click", () => {
  setToken("");
  identity = null;
  leave();
  signInPage("Signed out.");
});
window.addEventListener("hashchange", route);
start();
