// The console talks to Maestro's HTTP API like any other client: the same routes, the same bearer token.
// The token lives in this tab's sessionStorage only (closing the tab signs out); live updates are the
// API's Server-Sent Events, read with fetch() so that they carry the token too (EventSource cannot).

import { answerSchema, complete } from "./schema.js";

const KEY = "maestro.token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** The token this tab signed in with, or "". */
export function token() {
  return sessionStorage.getItem(KEY) || "";
}

/** Keep `value` as this tab's token ("" signs out). */
export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  if (token()) out.Authorization = `Bearer ${token()}`;
  return out;
}

/** A JSON call: the decoded answer, or an ApiError with the API's status and error body. */
export async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  let decoded = null;
  try {
    decoded = text ? JSON.parse(text) : null;
  } catch {
    decoded = { error: text };
  }
  if (!response.ok) throw new ApiError(response.status, decoded);
  return complete(decoded, answerSchema(method, path));
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});

/** A query string of the non-empty parameters (arrays repeat the name). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") search.append(name, one);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Follow GET /v1/events with these parameters: `onEvent(kind, event)` for each, until `signal` aborts.
 * A dropped stream is opened again after a pause, resuming after the last event seen (Last-Event-ID), so
 * nothing the stream still holds is missed. `onState("live" | "reconnecting")` says how it is going.
 */
export async function follow(params, onEvent, signal, onState = () => {}) {
  let lastId = null;
  let pause = 500;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const response = await fetch(`/v1/events${query(params)}`, { headers: headers(extra), signal });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      onState("live");
      pause = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (frame.id !== undefined) lastId = frame.id;
          if (frame.data !== undefined) onEvent(frame.event, complete(JSON.parse(frame.data), eventSchema()));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        onState("refused");
        return;
      }
    }
    if (signal.aborted) return;
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10000);
  }
}

/** A streamed event's schema: one of the events GET /v1/tasks/{id}/events answers. */
function eventSchema() {
  return answerSchema("GET", "/v1/tasks/any/events")?.items ?? null;
}

/** One Server-Sent Event's fields (comment lines, starting with ":", are skipped). */
export function parseFrame(text) {
  const frame = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    frame[name] = name === "data" && frame.data !== undefined ? `${frame.data}\n${value}` : value;
  }
  return frame;
}

/** How long after a burst of events the page reads again: the records it lists lag their events by up to
 * the orchestrator's record linger (MAESTRO_RECORD_LINGER_S, 0.5 s). */
const RECORD_LAG_MS = 700;

/**
 * A reload that live events ask for: a burst of them is one call of `load` (after `ms` of quiet), and a new
 * one starts no sooner than four times as long after the last as that one took (at least `ms`), so a busy
 * mesh, whose listings take longer, is asked less often, never in a storm; one more call follows
 * RECORD_LAG_MS later, when the records hold what the events said.
 */
export function debounce(load, ms = 300) {
  let timer = null;
  let settle = null;
  let running = false;
  let again = false;
  let took = 0;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    const started = performance.now();
    try {
      await load();
    } finally {
      took = performance.now() - started;
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    clearTimeout(settle);
    const wait = Math.max(ms, 4 * took);
    timer = setTimeout(run, wait);
    // Records lag their events by up to MAESTRO_RECORD_LINGER_S: once more when that has passed.
    settle = setTimeout(run, wait + RECORD_LAG_MS);
  };
  return schedule;
}
