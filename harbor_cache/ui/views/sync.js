// Sync rules (scheduled pre-fetch): the rules with their last run, a running run's progress (polled),
// Run now, the history of one rule, and a form to add an OCI or Maven rule.
// Address: #/sync (optional ?rule=<id> shows that rule's history)
import { api, confirmDialog, errorBox, formatSize, h, table, timeEl } from "../lib.js";

const POLL_MS = 2000;

function list(text) {
  return text.split(",").map(s => s.trim()).filter(Boolean);
}

function what(rule) {
  if (rule.kind === "maven") return `${rule.maven_repository}: ${rule.artifacts.join(", ")}`;
  let text = `${rule.upstream}: ${rule.repositories.join(", ")} tags ${rule.tags.join(", ")}`;
  if (rule.newest) text += `, newest ${rule.newest}`;
  if (rule.platforms.length) text += `, ${rule.platforms.join(", ")}`;
  return text;
}

function runCells(run) {
  if (!run) return [h("td", {}, "never"), h("td", {}), h("td", {}), h("td", {})];
  return [
    h("td", {}, h("span", { class: "badge status-" + run.status }, run.status), " ", timeEl(run.started_at)),
    h("td", { class: "num" }, `${run.manifests} / ${run.blobs}`),
    h("td", { class: "num" }, formatSize(run.bytes)),
    h("td", { class: "wrap" }, run.error || ""),
  ];
}

export async function render(main, { navigate, params }) {
  main.append(h("h1", { tabindex: "-1" }, "Sync rules"));
  main.append(h("p", { class: "muted" }, "Pre-fetch tags (or Maven metadata) on a schedule, before any client asks. " +
    "A run stops when the upstream's rate limit runs low or the disk is below its floor."));
  const status = h("p", { role: "status", id: "sync-status" });
  const rules = h("div", { id: "sync-rules" });
  const history = h("div", { id: "sync-history" });
  let timer = null;

  async function load() {
    let data;
    try {
      data = await api("/api/v1/sync");
    } catch (e) {
      rules.replaceChildren(errorBox(e));
      return;
    }
    const rows = data.rules.map(rule => h("tr", { dataset: { id: rule.id } },
      h("td", { class: "num" }, rule.id), h("td", {}, rule.kind), h("td", { class: "wrap" }, what(rule)),
      h("td", { class: "num" }, `${rule.interval_seconds} s`), h("td", {}, rule.enabled ? "yes" : "no"),
      ...runCells(rule.last_run),
      h("td", {},
        h("button", { type: "button", class: "sync-run", onclick: () => runNow(rule.id) }, "Run now"), " ",
        h("button", { type: "button", class: "sync-history", onclick: () => navigate("sync", { rule: rule.id }) },
          "History"), " ",
        h("button", { type: "button", class: "danger sync-delete", onclick: () => remove(rule.id) }, "Delete…"))));
    rules.replaceChildren(
      table(["Id", "Kind", "What", "Every", "Enabled", "Last run", "Manifests / blobs", "Bytes", "Error", ""], rows,
        { className: "sync-rules", caption: "Rules and their last run" }),
      data.rules.length ? "" : h("p", { class: "muted" }, "No sync rule yet."));
    const running = data.rules.some(r => r.last_run && r.last_run.status === "running");
    if (params.get("rule")) await loadHistory(params.get("rule"));
    clearTimeout(timer);
    if (running) timer = setTimeout(load, POLL_MS);
  }

  async function loadHistory(id) {
    try {
      const data = await api(`/api/v1/sync/${encodeURIComponent(id)}/runs`);
      history.replaceChildren(h("h2", {}, `Runs of rule ${id}`),
        table(["Started", "Finished", "Status", "Node", "Tags seen", "Manifests", "Blobs", "Bytes", "Error"],
          data.runs.map(r => h("tr", { dataset: { id: r.id } }, h("td", {}, timeEl(r.started_at)),
            h("td", {}, r.finished_at ? timeEl(r.finished_at) : "…"), h("td", {}, r.status), h("td", {}, r.node),
            h("td", { class: "num" }, r.tags_seen), h("td", { class: "num" }, r.manifests),
            h("td", { class: "num" }, r.blobs), h("td", { class: "num" }, formatSize(r.bytes)),
            h("td", { class: "wrap" }, r.error || ""))), { className: "sync-runs", caption: "Newest first" }));
    } catch (e) {
      history.replaceChildren(errorBox(e));
    }
  }

  async function runNow(id) {
    try {
      await api(`/api/v1/sync/${id}/run`, { method: "POST" });
      status.textContent = `Rule ${id} is running.`;
    } catch (e) {
      status.textContent = e.message;
    }
    await load();
  }

  async function remove(id) {
    if (!(await confirmDialog(`Delete sync rule ${id} and its history?`, "Delete"))) return;
    try {
      await api(`/api/v1/sync/${id}`, { method: "DELETE" });
      status.textContent = `Rule ${id} deleted.`;
    } catch (e) {
      status.textContent = e.message;
    }
    await load();
  }

  const field = (id, label, attrs = {}) => h("label", {}, label, h("input", { id, name: id, ...attrs }));
  const form = h("form", { id: "sync-form", class: "card inline-form" },
    h("h2", {}, "Add a rule"),
    field("sync-upstream", "Upstream (OCI) ", { placeholder: "docker-hub" }),
    field("sync-repositories", "Repositories ", { placeholder: "library/python, library/node" }),
    field("sync-tags", "Tag globs ", { placeholder: "3.*-slim" }),
    field("sync-newest", "Newest ", { type: "number", min: "1" }),
    field("sync-platforms", "Platforms ", { placeholder: "linux/amd64, linux/arm64" }),
    field("sync-maven", "or Maven repository ", { placeholder: "central" }),
    field("sync-artifacts", "Artifacts ", { placeholder: "org.example:lib" }),
    field("sync-interval", "Every (seconds) ", { type: "number", value: "3600", required: true }),
    h("button", { type: "submit", id: "sync-add" }, "Add rule"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const value = id => form.querySelector("#" + id).value.trim();
    const body = { interval_seconds: Number(value("sync-interval")), enabled: true };
    if (value("sync-maven")) {
      Object.assign(body, { maven_repository: value("sync-maven"), artifacts: list(value("sync-artifacts")) });
    } else {
      Object.assign(body, { upstream: value("sync-upstream"), repositories: list(value("sync-repositories")),
        tags: list(value("sync-tags")), platforms: list(value("sync-platforms")) });
      if (value("sync-newest")) body.newest = Number(value("sync-newest"));
    }
    try {
      const rule = await api("/api/v1/sync", { method: "POST", body });
      status.textContent = `Rule ${rule.id} added.`;
      form.reset();
    } catch (e) {
      status.textContent = e.message;
    }
    await load();
  });

  main.append(status, rules, history, form);
  await load();
  return () => clearTimeout(timer);
}
