// A workflow's DAG drawn as SVG: steps in layers (each one layer right of the deepest step it needs),
// edges from each need to the step, each step coloured by its state and named in words.

import { h, s } from "./dom.js";

const W = 168;
const H = 48;
const GAP_X = 64;
const GAP_Y = 20;

/** The names a step needs (a need is a name, or {step, on_failure}). */
export function needsOf(step) {
  return (step.needs || []).map((n) => (typeof n === "string" ? n : n.step));
}

/** Each step's layer: 0 for a step that needs nothing, else one more than its deepest need. Pure. */
export function layers(steps) {
  const byName = new Map(steps.map((st) => [st.name, st]));
  const depth = new Map();
  const visit = (name, path = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (path.has(name) || !byName.has(name)) return 0;
    path.add(name);
    const needs = needsOf(byName.get(name));
    const d = needs.length ? 1 + Math.max(...needs.map((n) => visit(n, path))) : 0;
    path.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const st of steps) visit(st.name);
  return depth;
}

/** Where each step's box goes: {name: {x, y}}, and the drawing's size. Pure. */
export function layout(steps) {
  const depth = layers(steps);
  const columns = [];
  for (const st of steps) {
    const d = depth.get(st.name);
    (columns[d] ||= []).push(st.name);
  }
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const height = rows * (H + GAP_Y) + GAP_Y;
  const at = {};
  columns.forEach((names, d) => {
    const top = (height - names.length * (H + GAP_Y) + GAP_Y) / 2;
    names.forEach((name, i) => {
      at[name] = { x: GAP_X / 2 + d * (W + GAP_X), y: top + i * (H + GAP_Y) };
    });
  });
  return { at, width: columns.length * (W + GAP_X), height };
}

/** The DAG of `workflow` (its steps) with the states of `stepRecords`, as an SVG element. */
export function drawGraph(workflow, stepRecords) {
  const steps = workflow.steps;
  const record = new Map(stepRecords.map((r) => [r.name, r]));
  const { at, width, height } = layout(steps);
  const edges = steps.flatMap((st) =>
    needsOf(st)
      .filter((n) => at[n])
      .map((n) => {
        const from = at[n];
        const to = at[st.name];
        const x1 = from.x + W;
        const y1 = from.y + H / 2;
        const x2 = to.x;
        const y2 = to.y + H / 2;
        const mid = (x1 + x2) / 2;
        return s("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}`, "marker-end": "url(#arrow)" });
      }),
  );
  const nodes = steps.map((st) => {
    const r = record.get(st.name) || { state: "waiting", task_id: "" };
    const { x, y } = at[st.name];
    const label = `step ${st.name} (${st.role}): ${r.state}`;
    const box = s(
      "g",
      { class: `node state-${r.state}`, transform: `translate(${x},${y})`, "data-step": st.name, "data-state": r.state },
      s("title", {}, label),
      s("rect", { width: W, height: H, rx: 8 }),
      s("text", { x: 12, y: 20, class: "name" }, st.name),
      s("text", { x: 12, y: 38, class: "state" }, `${r.state.replaceAll("_", " ")} · ${st.role}`),
    );
    return r.task_id ? s("a", { href: `#/tasks/${encodeURIComponent(r.task_id)}`, "aria-label": label }, box) : box;
  });
  return s(
    "svg",
    { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-label": `Workflow ${workflow.id}: ${steps.length} steps` },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 6, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))),
    edges,
    nodes,
  );
}

/** The steps as a list too, for whoever does not see the drawing. */
export function stepList(stepRecords) {
  return h(
    "ul",
    { class: "steps visually-hidden" },
    stepRecords.map((r) => h("li", {}, `${r.name}: ${r.state}`)),
  );
}
