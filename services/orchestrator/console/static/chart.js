// Charts over time as SVG, drawn from the API's numbers: lines (a budget's spent and held) and stacked
// bars (the guard's decisions by verdict). Each chart has a caption and its numbers as a table too.

import { h, head, s } from "./dom.js";

const W = 720;
const H = 220;
const PAD = { left: 64, right: 16, top: 12, bottom: 28 };

function scale(domain, range) {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

function ticks(max, count = 4, whole = false) {
  if (max <= 0) return [0];
  const step = Math.max(whole ? 1 : 0, Math.pow(10, Math.floor(Math.log10(max / count))));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((st) => max / st <= count) || step * 10;
  const out = [];
  for (let v = 0; v <= max + nice / 2; v += nice) out.push(v);
  return out;
}

function axes(x, y, t0, t1, yMax, format, whole = false) {
  const yTicks = ticks(yMax, 4, whole);
  const xTicks = [t0, (t0 + t1) / 2, t1];
  const long = t1 - t0 > 12 * 3600 * 1000;
  const when = (t) => new Date(t).toLocaleString([], long ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
  return [
    yTicks.map((v) => [
      s("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      s("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, format(v)),
    ]),
    xTicks.map((t) => s("text", { class: "tick", x: x(t), y: H - 8, "text-anchor": "middle" }, when(t))),
  ];
}

/**
 * A line chart: `series` is [{name, cls, points: [[timeMs, value], ...]}], `format(value)` labels the
 * y axis. Returns a <figure> with the chart, a legend and the numbers as a table.
 */
export function lineChart(title, series, format, extraMax = 0) {
  const all = series.flatMap((se) => se.points);
  if (!all.length) return h("p", { class: "empty" }, `${title}: nothing recorded in this window yet.`);
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]), t0 + 60000);
  const yMax = Math.max(1e-6, extraMax, ...all.map((p) => p[1])) * 1.08;
  const x = scale([t0, t1], [PAD.left, W - PAD.right]);
  const y = scale([0, yMax], [H - PAD.bottom, PAD.top]);
  const lines = series.map((se) =>
    s(
      "g",
      { class: `series ${se.cls}` },
      s("polyline", { points: se.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }),
      se.points.length < 60 ? se.points.map(([t, v]) => s("circle", { cx: x(t), cy: y(v), r: 3 })) : null,
    ),
  );
  const limit = extraMax ? s("line", { class: "limit", x1: PAD.left, x2: W - PAD.right, y1: y(extraMax), y2: y(extraMax) }) : null;
  return figure(title, s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, axes(x, y, t0, t1, yMax, format), limit, lines), series, format);
}

/**
 * Stacked bars: `bars` is [{t: timeMs, parts: {name: value}}], `kinds` names the parts in order and
 * `classOf(kind)` the CSS class that colours each (the kind itself by default).
 */
export function barChart(title, bars, kinds, classOf = (kind) => kind) {
  if (!bars.length) return h("p", { class: "empty" }, `${title}: nothing recorded in this window yet.`);
  const t0 = bars[0].t;
  const t1 = Math.max(bars[bars.length - 1].t, t0 + 60000);
  const totals = bars.map((b) => kinds.reduce((sum, k) => sum + (b.parts[k] || 0), 0));
  const yMax = Math.max(1, ...totals) * 1.08;
  const x = scale([t0, t1], [PAD.left + 8, W - PAD.right - 8]);
  const y = scale([0, yMax], [H - PAD.bottom, PAD.top]);
  const width = Math.max(3, Math.min(28, ((W - PAD.left - PAD.right) / bars.length) * 0.7));
  const rects = bars.map((b) => {
    let base = 0;
    return kinds.map((k) => {
      const v = b.parts[k] || 0;
      if (!v) return null;
      const rect = s("rect", { class: `part ${classOf(k)}`, x: x(b.t) - width / 2, y: y(base + v), width, height: y(base) - y(base + v) }, s("title", {}, `${k}: ${v}`));
      base += v;
      return rect;
    });
  });
  const series = kinds.map((k) => ({ name: k, cls: classOf(k), points: bars.map((b) => [b.t, b.parts[k] || 0]) }));
  return figure(title, s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, axes(x, y, t0, t1, yMax, (v) => String(Math.round(v)), true), rects), series, (v) => String(v));
}

function figure(title, svg, series, format) {
  const times = [...new Set(series.flatMap((se) => se.points.map((p) => p[0])))].sort((a, b) => a - b);
  const value = (se, t) => {
    const point = se.points.find((p) => p[0] === t);
    return point ? format(point[1]) : "";
  };
  return h(
    "figure",
    { class: "chart" },
    h("figcaption", {}, title),
    svg,
    h("ul", { class: "legend" }, series.map((se) => h("li", { class: se.cls }, h("span", { class: "swatch", "aria-hidden": "true" }), se.name))),
    h(
      "details",
      {},
      h("summary", {}, "The numbers"),
      h(
        "table",
        {},
        head(["Time", ...series.map((se) => se.name)]),
        h("tbody", {}, times.slice(-50).map((t) => h("tr", {}, h("td", {}, new Date(t).toLocaleString()), series.map((se) => h("td", { class: "num" }, value(se, t)))))),
      ),
    ),
  );
}
