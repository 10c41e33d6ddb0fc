// A small hand-written SVG line chart: x = the first time column, y = numeric columns.
"use strict";

const TIME_TYPES = new Set(["timestamptz", "timestamp", "date"]);
const SERIES_COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed"];
const SVG_NS = "http://www.w3.org/2000/svg";

function chartSpec(columns, types) {
  const x = types.findIndex((t) => TIME_TYPES.has(t));
  if (x < 0) return null;
  const ys = types
    .map((t, i) => (NUMERIC_TYPES.has(t) && i !== x ? i : -1))
    .filter((i) => i >= 0)
    .slice(0, SERIES_COLORS.length);
  return ys.length ? { x, ys } : null;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart(target, columns, types, rows) {
  const spec = chartSpec(columns, types);
  target.replaceChildren();
  if (!spec) return false;
  const points = rows
    .map((r) => [Date.parse(r[spec.x]), spec.ys.map((i) => (r[i] === null ? NaN : Number(r[i])))])
    .filter((p) => Number.isFinite(p[0]))
    .sort((a, b) => a[0] - b[0]);
  if (points.length < 1) return false;
  const W = 900, H = 280, L = 60, R = 150, T = 15, B = 30;
  const xs = points.map((p) => p[0]);
  const values = points.flatMap((p) => p[1]).filter(Number.isFinite);
  if (!values.length) return false;
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...values), Math.max(...values)];
  if (x0 === x1) { x0 -= 1000; x1 += 1000; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  target.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "chart-axis" }));
  target.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "chart-axis" }));
  const label = (x, y, text, anchor) =>
    target.append(svg("text", { x, y, "text-anchor": anchor, class: "chart-label" }, text));
  label(L - 6, T + 4, y1.toPrecision(4), "end");
  label(L - 6, H - B, y0.toPrecision(4), "end");
  label(L, H - 8, new Date(x0).toISOString().replace("T", " ").slice(0, 19), "start");
  label(W - R, H - 8, new Date(x1).toISOString().replace("T", " ").slice(0, 19), "end");
  spec.ys.forEach((col, k) => {
    const path = points
      .filter((p) => Number.isFinite(p[1][k]))
      .map((p) => sx(p[0]).toFixed(1) + "," + sy(p[1][k]).toFixed(1))
      .join(" ");
    const color = SERIES_COLORS[k];
    target.append(svg("polyline", { points: path, fill: "none", stroke: color, "stroke-width": 1.5, class: "series" }));
    if (points.length === 1) {
      const [px, py] = path.split(",");
      target.append(svg("circle", { cx: px, cy: py, r: 3, fill: color, class: "series" }));
    }
    target.append(svg("rect", { x: W - R + 12, y: T + k * 18, width: 10, height: 10, fill: color }));
    label(W - R + 28, T + k * 18 + 9, columns[col], "start");
  });
  return true;
}
