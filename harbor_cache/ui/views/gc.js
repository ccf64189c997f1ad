// Garbage collection of hosted content: the last runs (every node), Run and Dry run buttons.
// Address: #/gc
import { api, confirmDialog, errorBox, formatSize, h, table, timeEl } from "../lib.js";

function runRow(run) {
  return h("tr", { dataset: { id: run.id ?? "" } },
    h("td", {}, timeEl(run.started_at)),
    h("td", {}, run.dry_run ? h("span", { class: "badge" }, "dry run") : "run"),
    h("td", {}, run.reason), h("td", {}, run.node),
    h("td", { class: "num" }, run.manifests), h("td", { class: "num" }, run.blobs),
    h("td", { class: "num" }, formatSize(run.freed_bytes)),
    h("td", { class: "num" }, `${run.duration_seconds} s`),
    h("td", { class: "wrap" }, run.error || ""));
}

export async function render(main) {
  main.append(h("h1", { tabindex: "-1" }, "Garbage collection"));
  const status = h("p", { role: "status", id: "gc-status" });
  const body = h("div", { id: "gc-runs" });

  async function load() {
    let history;
    try {
      history = await api("/api/v1/gc");
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    const every = history.interval_seconds ? `every ${history.interval_seconds} s` : "on demand only";
    body.replaceChildren(
      h("p", { class: "muted", id: "gc-settings" },
        `Removes hosted manifests nothing tags or references and blobs no manifest needs; ` +
        `content newer than ${history.grace_seconds} s is kept. Scheduled: ${every}.`),
      table(["Started", "Kind", "Reason", "Node", "Manifests", "Blobs", "Freed", "Duration", "Error"],
        history.runs.map(runRow), { className: "gc-runs", caption: "Last runs, newest first", empty: "No run yet." }));
  }

  async function collect(dryRun) {
    if (!dryRun && !(await confirmDialog("Delete every hosted manifest nothing tags or references and every hosted blob no " +
      "manifest needs, now? (A dry run first says how many.)", "Collect garbage"))) return;
    status.textContent = dryRun ? "Dry run…" : "Collecting…";
    try {
      const r = await api("/api/v1/gc", { method: "POST", body: { dry_run: dryRun } });
      status.textContent = `${dryRun ? "Would remove" : "Removed"} ${r.manifests} manifests and ${r.blobs} blobs ` +
        `(${formatSize(r.freed_bytes)}) in ${r.duration_seconds} s.`;
    } catch (e) {
      status.textContent = e.message;
    }
    await load();
  }

  main.append(
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "gc-dry-run", onclick: () => collect(true) }, "Dry run"),
      h("button", { type: "button", class: "danger", id: "gc-run", onclick: () => collect(false) }, "Run…")),
    status, body);
  await load();
}
