// The dashboard's traffic charts (GET /api/v1/dashboard/history): requests by cache status, bytes served from
// the cache against bytes fetched upstream (and the bandwidth saved as one number), upstream errors; over the
// last hour, day or week. Drawn here as SVG (no library): stacked bars, one per time bucket.
import { api, clear, errorBox, formatSize, h } from "../lib.js";

const SVG = "http://www.w3.org/2000/svg";
const RANGES = ["hour", "day", "week"];
const REFRESH_MS = 10000; // nodes flush their counters every 10 s
const W = 1000, H = 170, PAD_L = 84, PAD_B = 18, PAD_T = 6;
const COLORS = { hit: "#127a3a", miss: "#1f5fbf", stale: "#c77700", joined: "#7a3fb0", coalesced: "#7a3fb0", revalidated: "#0f7f86",
  cache: "#127a3a", upstream: "#1f5fbf" };
const SPARE = ["#8a5a00", "#b42318", "#4d6b2f", "#5b6b8a", "#a03c78", "#3c7aa0"];

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function colorOf(label, i) { return COLORS[label] || SPARE[i % SPARE.length]; }

function timeLabel(epoch, range) {
  const d = new Date(epoch * 1000);
  return range === "week" ? d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " +
    d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// series: [[label, values[]], ...] stacked bottom-up; fmt formats a value for the axis and the tooltips.
function stackedBars(id, title, data, series, fmt) {
  const n = data.buckets.length;
  const totals = data.buckets.map((_, i) => series.reduce((s, [, v]) => s + v[i], 0));
  const max = Math.max(1, ...totals);
  const bw = (W - PAD_L) / n, ph = H - PAD_B - PAD_T;
  const sum = totals.reduce((a, b) => a + b, 0);
  const chart = svg("svg", { id, viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "history-chart",
    "aria-label": `${title}, last ${data.range}: ${fmt(sum)} in all, at most ${fmt(max)} per bucket`,
    "data-total": sum });
  chart.append(
    svg("line", { x1: PAD_L, y1: PAD_T + ph, x2: W, y2: PAD_T + ph, stroke: "#dde1e8" }),
    svg("line", { x1: PAD_L, y1: PAD_T, x2: W, y2: PAD_T, stroke: "#eef0f3" }),
    svg("text", { x: PAD_L - 4, y: PAD_T + 10, "text-anchor": "end", "font-size": 11, fill: "#626b7a" }, fmt(max)),
    svg("text", { x: PAD_L - 4, y: PAD_T + ph, "text-anchor": "end", "font-size": 11, fill: "#626b7a" }, "0"),
    svg("text", { x: PAD_L, y: H - 4, "font-size": 11, fill: "#626b7a" }, timeLabel(data.buckets[0], data.range)),
    svg("text", { x: W, y: H - 4, "text-anchor": "end", "font-size": 11, fill: "#626b7a" }, "now"));
  for (let i = 0; i < n; i++) {
    if (!totals[i]) continue;
    let y = PAD_T + ph;
    const tip = [timeLabel(data.buckets[i], data.range)];
    const group = svg("g", { class: "bar" });
    series.forEach(([label, values], s) => {
      const v = values[i];
      if (!v) return;
      const hgt = Math.max(1, (v / max) * ph);
      y -= hgt;
      group.append(svg("rect", { x: (PAD_L + i * bw).toFixed(2), y: y.toFixed(2), width: Math.max(1, bw - 1).toFixed(2),
        height: hgt.toFixed(2), fill: colorOf(label, s) }));
      tip.push(`${label}: ${fmt(v)}`);
    });
    group.append(svg("title", {}, tip.join("\n")));
    chart.append(group);
  }
  const legend = h("ul", { class: "legend" }, series.map(([label, values], s) =>
    h("li", {}, svg("svg", { class: "swatch", viewBox: "0 0 10 10", "aria-hidden": "true" },
      svg("rect", { width: 10, height: 10, rx: 2, fill: colorOf(label, s) })), `${label} `,
      h("span", { class: "muted" }, fmt(values.reduce((a, b) => a + b, 0))))));
  return h("figure", { class: "card history" }, h("figcaption", { class: "label" }, title), chart,
    series.length ? legend : h("p", { class: "muted" }, "Nothing in this range yet."));
}

function sumSeries(map, n) {
  const out = new Array(n).fill(0);
  for (const values of Object.values(map)) values.forEach((v, i) => { out[i] += v; });
  return out;
}

const count = v => String(v);

function charts(data) {
  const n = data.buckets.length, t = data.totals;
  const served = sumSeries(data.series.served_bytes, n), upstream = sumSeries(data.series.upstream_bytes, n);
  const fromCache = served.map((v, i) => Math.max(v - upstream[i], 0));
  const bytes = t.served_bytes || t.upstream_bytes ? [["cache", fromCache], ["upstream", upstream]] : [];
  const saved = t.saved_ratio === null
    ? "nothing served yet"
    : `saved ${formatSize(t.saved_bytes)} (${Math.round(t.saved_ratio * 100)}%)`;
  return [
    h("p", { class: "history-saved" }, h("strong", { id: "history-saved" }, saved),
      h("span", { class: "muted" }, ` · ${t.requests} requests, ${formatSize(t.served_bytes)} served, `
        + `${formatSize(t.upstream_bytes)} from upstreams, ${t.upstream_errors} upstream errors`)),
    stackedBars("chart-requests", "Requests by cache status", data, Object.entries(data.series.requests), count),
    stackedBars("chart-bytes", "Bytes served from the cache / fetched upstream", data, bytes, formatSize),
    stackedBars("chart-errors", "Upstream errors", data, Object.entries(data.series.upstream_errors), count),
  ];
}

// The section (range switch + charts); returns [element, stop].
export function historySection() {
  let range = "hour", stopped = false;
  const body = h("div", { id: "history-charts", "aria-live": "off" });
  const buttons = RANGES.map(r => h("button", { type: "button", class: "btn", dataset: { range: r },
    "aria-pressed": r === range ? "true" : "false", onclick: () => { range = r; mark(); refresh(); } }, "Last " + r));
  const mark = () => buttons.forEach(b => b.setAttribute("aria-pressed", String(b.dataset.range === range)));
  const refresh = async () => {
    const asked = range;
    try {
      const data = await api("/api/v1/dashboard/history?range=" + asked);
      if (asked === range && !stopped) { clear(body).append(...charts(data)); body.dataset.range = asked; }
    } catch (e) { if (!stopped) clear(body).append(errorBox(e)); }
  };
  const section = h("section", { id: "history", "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, "Traffic history"),
    h("div", { id: "history-range", role: "group", "aria-label": "Range" }, buttons), body);
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return [section, () => { stopped = true; clearInterval(timer); }];
}
