// Building the page: elements made from data with textContent only (never innerHTML), so nothing a task,
// a tenant or a model wrote can run as script. Formatting of money, times and states.

/** An element: h("a", {href: "#/x", class: "y"}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const svg = attrs.svg;
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "svg" || value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes written as text.
    else if (key === "style") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** An SVG element (h with the SVG namespace). */
export function s(tag, attrs = {}, ...children) {
  return h(tag, { ...attrs, svg: true }, ...children);
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what `el` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Dollars from micro-USD: 1234567 → "$1.23". */
export function usd(micro) {
  if (micro === null || micro === undefined) return "—";
  const dollars = micro / 1e6;
  return (dollars < 0 ? "-$" : "$") + Math.abs(dollars).toFixed(Math.abs(dollars) < 1 && dollars !== 0 ? 4 : 2);
}

/** A time as the reader's locale shows it, with the ISO time in a tooltip. */
export function time(iso) {
  if (!iso) return "—";
  return h("time", { datetime: iso, title: iso }, new Date(iso).toLocaleString());
}

/** How long ago (or from now) a time is: "3 min ago", "in 12 s". */
export function relative(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const size = Math.abs(seconds);
  const text = size < 90 ? `${size} s` : size < 5400 ? `${Math.round(size / 60)} min` : size < 172800 ? `${Math.round(size / 3600)} h` : `${Math.round(size / 86400)} d`;
  return seconds < 0 ? `${text} ago` : `in ${text}`;
}

const ENDED = new Set(["succeeded", "failed", "rejected", "cancelled", "timed_out"]);

/** Whether a task's state is final. */
export function ended(state) {
  return ENDED.has(state);
}

/** A state as a badge: its name in words (never colour alone), coloured by class. */
export function badge(state) {
  return h("span", { class: `badge state-${state}` }, state.replaceAll("_", " "));
}

/** A table's head: one column header for each name. */
export function head(columns) {
  return h("thead", {}, h("tr", {}, columns.map((name) => h("th", { scope: "col" }, name))));
}

/** One "term: value" row of a description list. */
export function row(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}
