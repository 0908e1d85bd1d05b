// Charts drawn as SVG in the browser from the API's figures (no library, nothing from a CDN): bars
// per day or month (stacked when there are several series) and lines over time. Each chart is a
// figure: the picture is role=img with a title and a description for screen readers, and the same
// figures are in a table under it ("Show as table"); numbers and dates in the console's language.
import { fmtNum, locale, t, unitText } from "./i18n.js";
import { h } from "./ui.js";

// the SVG namespace (a name, not something fetched), as the parser gives it
const NS = new DOMParser().parseFromString('<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")
  .documentElement.namespaceURI;
// drawing units: about a pixel of a full-width card (`narrow`: of a half-width one), so the text
// keeps its size
const WIDE = 760;
const NARROW = 520;
const H = 250;
const PAD = { l: 64, r: 16, t: 28, b: 40 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

// "Nice" axis steps: 1, 2 or 5 times a power of ten, about `n` of them from 0 (or the minimum) up.
export function ticks(min, max, n = 5, integer = false) {
  if (!(max > min)) {
    const v = Number.isFinite(max) ? max : 0;
    return v === 0 ? [0, 1] : v > 0 ? [0, v] : [v, 0];
  }
  const raw = (max - min) / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(integer ? 1 : 0, [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw));
  const out = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

// "2026-12-07" (a local day) -> a Date at that day's midnight in the browser
function dayDate(text) {
  const [y, m, d] = text.split("-").map(Number);
  return new Date(y, m - 1, d);
}

export function bucketLabel(text, period, long = false) {
  const d = dayDate(text);
  if (period === "month") return d.toLocaleDateString(locale(), { month: long ? "long" : "short", year: "numeric" });
  return d.toLocaleDateString(locale(), long ? { day: "2-digit", month: "2-digit", year: "numeric" } :
    { day: "2-digit", month: "2-digit" });
}

function timeLabel(date, withTime, withYear = true) {
  if (withTime) return date.toLocaleString(locale(), { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" });
  return date.toLocaleDateString(locale(), withYear ? { day: "2-digit", month: "2-digit", year: "numeric" } :
    { day: "2-digit", month: "2-digit" });
}

function numberOr(v, unit) {
  return v === null || v === undefined ? t("no value") : `${fmtNum(v)} ${unitText(unit)}`.trim();
}

function yAxis(svg, axis, unit, y, W) {
  const lo = axis[0];
  const hi = axis[axis.length - 1];
  const grid = s("g", { class: "grid" });
  for (const v of axis) {
    if (v < lo - 1e-9 || v > hi + 1e-9) continue;
    grid.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v) }),
      s("text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNum(v)));
  }
  grid.append(s("text", { x: 4, y: 14, "text-anchor": "start", class: "unit" }, unitText(unit)));
  svg.append(grid);
}

function figure(title, desc, svg, tableEl, legend) {
  const id = `chart-${Math.random().toString(36).slice(2, 9)}`;
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  svg.setAttribute("aria-describedby", `${id}-desc`);
  svg.prepend(s("title", {}, title));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg,
    h("p", { class: "sr-only", id: `${id}-desc` }, desc), legend || null,
    h("details", { class: "chart-table" }, h("summary", {}, t("Show as table")), tableEl));
}

function legendOf(series, always = false) {
  if (series.length < 2 && !always) return null;
  return h("ul", { class: "legend" }, series.map((x, i) => h("li", {},
    h("span", { class: `swatch ${x.cls || `s${i}`}`, "aria-hidden": "true" }), x.name)));
}

function simpleTable(head, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { scope: "col", class: i ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: i ? "num" : "" }, c))))));
}

// Bars per day or month. labels: the buckets' days ("2026-12-07"); series: [{name, cls, values}]
// stacked; `faint[i]`: the bar's figure is not complete (lighter, said in its tooltip and the table).
export function barChart({ title, desc, unit, period, labels, series, faint = [], narrow = false, integer = false,
  legend = false }) {
  const W = narrow ? NARROW : WIDE;
  const totals = labels.map((_, i) => series.reduce((a, x) => a + (x.values[i] > 0 ? x.values[i] : 0), 0));
  const lows = labels.map((_, i) => series.reduce((a, x) => a + (x.values[i] < 0 ? x.values[i] : 0), 0));
  const axis = ticks(Math.min(0, ...lows), Math.max(0, ...totals), 5, integer);
  const lo = axis[0];
  const hi = axis[axis.length - 1];
  const y = (v) => PAD.t + (H - PAD.t - PAD.b) * (1 - (v - lo) / (hi - lo || 1));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg" });
  yAxis(svg, axis, unit, y, W);
  const slot = (W - PAD.l - PAD.r) / Math.max(1, labels.length);
  const barW = Math.max(2, slot * 0.72);
  const every = Math.ceil(labels.length / (narrow ? 8 : 12)); // at most about 12 labels on the axis
  const bars = s("g", { class: "bars" });
  labels.forEach((label, i) => {
    const x = PAD.l + i * slot + (slot - barW) / 2;
    let up = 0;
    let down = 0;
    for (const [k, ser] of series.entries()) {
      const v = ser.values[i];
      if (v === null || v === undefined || v === 0) continue;
      const from = v > 0 ? up : down;
      const to = from + v;
      if (v > 0) up = to;
      else down = to;
      const tip = `${bucketLabel(label, period, true)}${series.length > 1 ? `, ${ser.name}` : ""}: ${numberOr(v, unit)}` +
        (faint[i] ? ` (${t("incomplete")})` : "");
      bars.append(s("rect", { x, width: barW, y: Math.min(y(from), y(to)), height: Math.max(1, Math.abs(y(from) - y(to))),
        class: `bar ${ser.cls || `s${k}`}${faint[i] ? " faint" : ""}` }, s("title", {}, tip)));
    }
    if (i % every === 0) {
      bars.append(s("text", { x: x + barW / 2, y: H - PAD.b + 16, "text-anchor": "middle", class: "x" },
        bucketLabel(label, period)));
    }
  });
  bars.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: y(0), y2: y(0), class: "zero" }));
  svg.append(bars);
  const head = [period === "month" ? t("Month") : t("Day"), ...series.map((x) => `${x.name} (${unitText(unit)})`)];
  const rows = labels.map((label, i) => [bucketLabel(label, period, true) + (faint[i] ? ` (${t("incomplete")})` : ""),
    ...series.map((x) => (x.values[i] === null || x.values[i] === undefined ? "—" : fmtNum(x.values[i])))]);
  return figure(title, desc, svg, simpleTable(head, rows), legendOf(series, legend));
}

// Lines over time. series: [{name, cls, points: [[Date, number|null]]}], one unit for all.
export function lineChart({ title, desc, unit, series, narrow = false, integer = false }) {
  const W = narrow ? NARROW : WIDE;
  const all = series.flatMap((x) => x.points.filter((p) => p[1] !== null && p[1] !== undefined));
  const xs = all.map((p) => p[0].getTime());
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const vs = all.map((p) => p[1]);
  let axis = ticks(Math.min(...vs), Math.max(...vs), 5, integer);
  if (Math.min(...vs) >= 0 && axis[0] < 0) axis = axis.filter((v) => v >= 0);
  const lo = axis[0];
  const hi = axis[axis.length - 1];
  const y = (v) => PAD.t + (H - PAD.t - PAD.b) * (1 - (v - lo) / (hi - lo || 1));
  const x = (ms) => PAD.l + (W - PAD.l - PAD.r) * (x1 > x0 ? (ms - x0) / (x1 - x0) : 0.5);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg" });
  yAxis(svg, axis, unit, y, W);
  const axisX = s("g", { class: "grid" });
  const n = x1 > x0 ? (narrow ? 4 : 6) : 1;
  for (let i = 0; i < n; i += 1) {
    const ms = x0 + ((x1 - x0) * i) / Math.max(1, n - 1);
    axisX.append(s("text", { x: x(ms), y: H - PAD.b + 16, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle",
      class: "x" }, timeLabel(new Date(ms), x1 - x0 < 3 * 86400000, x1 - x0 > 300 * 86400000)));
  }
  svg.append(axisX);
  series.forEach((ser, k) => {
    const cls = ser.cls || `s${k}`;
    let d = "";
    let pen = false;
    for (const [when, v] of ser.points) {
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${x(when.getTime()).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    svg.append(s("path", { d, class: `line ${cls}` }));
    if (ser.points.length <= 60) {
      for (const [when, v] of ser.points) {
        if (v === null || v === undefined) continue;
        svg.append(s("circle", { cx: x(when.getTime()), cy: y(v), r: 3, class: `dot ${cls}` },
          s("title", {}, `${timeLabel(when, true)}: ${numberOr(v, unit)}`)));
      }
    }
  });
  const times = [...new Set(series.flatMap((ser) => ser.points.map((p) => p[0].getTime())))].sort((a, b) => a - b);
  const byTime = series.map((ser) => new Map(ser.points.map((p) => [p[0].getTime(), p[1]])));
  const rows = times.map((ms) => [timeLabel(new Date(ms), true),
    ...byTime.map((m) => (m.get(ms) === null || m.get(ms) === undefined ? "—" : fmtNum(m.get(ms))))]);
  const head = [t("Time"), ...series.map((ser) => `${ser.name} (${unitText(unit)})`)];
  return figure(title, desc, svg, simpleTable(head, rows), legendOf(series));
}

// A sentence for screen readers: the range and the extremes of a series of figures.
export function describeRange(labels, values, unit, period) {
  const known = values.map((v, i) => [v, i]).filter(([v]) => v !== null && v !== undefined);
  if (!known.length) return t("No figures in this period.");
  const [maxV, maxI] = known.reduce((a, b) => (b[0] > a[0] ? b : a));
  const total = known.reduce((a, [v]) => a + v, 0);
  return t("From {first} to {last}: {total} in all, the most on {top} ({max}).", {
    first: bucketLabel(labels[0], period, true), last: bucketLabel(labels[labels.length - 1], period, true),
    total: numberOr(total, unit), top: bucketLabel(labels[maxI], period, true), max: numberOr(maxV, unit) });
}
