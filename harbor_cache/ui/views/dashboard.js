// The dashboard: health, version, uptime, hit rate, size against cache.max_size, counters by source,
// and in-flight downloads refreshed every second (no reload).
import { api, clear, errorBox, formatDuration, formatSize, h, table, timeEl } from "../lib.js";
import { historySection } from "./history.js";

const DOWNLOADS_EVERY_MS = 1000;
const SUMMARY_EVERY_MS = 5000;

function stat(label, value, id) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

function summary(d) {
  const c = d.cache;
  const used = Math.min(c.total_size / Math.max(c.max_size, 1), 1);
  return [
    h("div", { class: "stats" },
      stat("Status", h("span", { class: "badge " + d.status }, d.status), "dash-status"),
      stat("Version", d.version, "dash-version"),
      stat("Uptime", formatDuration(d.uptime_seconds), "dash-uptime"),
      stat("Hit rate", (c.hit_rate * 100).toFixed(1) + " %", "dash-hit-rate"),
      stat("Entries", String(c.entry_count), "dash-entries"),
      stat("In flight", String(d.inflight), "dash-inflight")),
    h("div", { class: "card" },
      h("div", { class: "label" }, "Cache size"),
      h("progress", { id: "dash-size-bar", max: 1000, value: Math.round(used * 1000),
        "aria-label": "Cache size against cache.max_size" }),
      h("div", { id: "dash-size" }, `${formatSize(c.total_size)} of ${formatSize(c.max_size)} (cache.max_size), `
        + `policy ${c.eviction_policy}; ${c.hit_count} hits, ${c.miss_count} misses since the cache was created`),
      // [storage] backend = "s3": the bucket holds the content, this node's disk a local tier of it
      c.storage_backend === "s3"
        ? h("div", { id: "dash-storage" }, `Object storage: ${formatSize(c.bucket_bytes)} in the bucket, `
          + `${formatSize(c.local_tier_bytes)} on this node's local tier`)
        : null),
    d.problems.length ? h("p", { class: "error", role: "alert" }, "Problems: " + d.problems.join(", ")) : null,
    h("h2", {}, "By front and source (since start)"),
    d.sources.length
      ? table(["Front", "Source", "Hits", "Misses", "From upstream", "Errors", "Joined"], d.sources.map(s =>
          h("tr", {}, h("td", {}, s.front), h("td", {}, s.source), h("td", { class: "num" }, s.hits),
            h("td", { class: "num" }, s.misses), h("td", { class: "num" }, formatSize(s.upstream_bytes)),
            h("td", { class: "num" }, s.errors), h("td", { class: "num" }, s.coalesced))), { className: "sources" })
      : h("p", { class: "muted" }, "No requests yet."),
    h("p", { class: "muted" }, "Served: ", Object.entries(d.served_bytes).map(([f, n]) => `${f} ${formatSize(n)}`).join(", ") || "nothing yet",
      " · started ", timeEl(d.started_at)),
  ];
}

function downloads(list) {
  if (!list.length) return h("p", { class: "muted", id: "no-downloads" }, "No download in progress.");
  return table(["What", "Source", "Progress", "Rate", "Clients", "Elapsed"], list.map(d => {
    const progress = d.total
      ? h("progress", { max: d.total, value: d.bytes_done, "aria-label": "Downloaded" })
      : h("progress", { "aria-label": "Downloaded (size unknown)" });
    return h("tr", { class: "download", dataset: { target: d.target } },
      h("td", {}, h("code", { title: d.target }, (d.repository ? d.repository + "/" : "") + d.target)),
      h("td", {}, `${d.front} · ${d.source}`),
      h("td", {}, progress, " ", h("span", { class: "bytes" },
        `${formatSize(d.bytes_done)} of ${d.total === null ? "?" : formatSize(d.total)}`),
        h("span", { class: "raw", hidden: true, dataset: { done: d.bytes_done, total: d.total ?? "" } })),
      h("td", { class: "num" }, formatSize(Math.round(d.rate)) + "/s"),
      h("td", { class: "num clients" }, d.clients),
      h("td", { class: "num" }, d.elapsed_seconds.toFixed(1) + " s"));
  }), { className: "downloads" });
}

export async function render(main) {
  main.append(h("h1", { tabindex: "-1" }, "Dashboard"));
  const top = h("section", { id: "dash-summary", "aria-live": "off" });
  const inflight = h("section", { id: "dash-downloads", "aria-labelledby": "dl-title" });
  const [history, stopHistory] = historySection();
  main.append(top, history, h("h2", { id: "dl-title" }, "Downloads in flight"), inflight);

  let stopped = false;
  const refreshSummary = async () => {
    try { clear(top).append(...summary(await api("/api/v1/dashboard")).filter(Boolean)); }
    catch (e) { if (!stopped) clear(top).append(errorBox(e)); }
  };
  const refreshDownloads = async () => {
    try {
      const list = (await api("/api/v1/downloads")).downloads;
      clear(inflight).append(downloads(list));
      const count = document.getElementById("dash-inflight");
      if (count) count.textContent = String(list.length);
    }
    catch (e) { if (!stopped) clear(inflight).append(errorBox(e)); }
  };
  await Promise.all([refreshSummary(), refreshDownloads()]);
  const timers = [setInterval(refreshSummary, SUMMARY_EVERY_MS), setInterval(refreshDownloads, DOWNLOADS_EVERY_MS)];
  return () => { stopped = true; timers.forEach(clearInterval); stopHistory(); };
}
