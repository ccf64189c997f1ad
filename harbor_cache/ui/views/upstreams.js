// Upstreams: each OCI upstream and Maven repository with its URL, health, last error and latency; OCI upstreams
// created here can be added, edited, tested and deleted (views/upstream_form.js holds the form).
// Built against GET /api/v1/upstreams; a server without that endpoint (404) gets a clear "not available" state.
// Upstreams the config file declares ("managed_by": "config") carry a "config" label and a note naming the file,
// and have no edit or delete button: they change in the file only (applied at every start).
// Maven repositories are not probed: their health reads "not probed", not "unknown".
import { api, ApiError, confirmDialog, errorBox, h, table, timeEl } from "../lib.js";
import { upstreamForm } from "./upstream_form.js";

const STATUS_TEXT = { not_probed: "not probed" };

function healthCell(health) {
  return h("td", {}, h("span", { class: "badge " + health.status }, STATUS_TEXT[health.status] || health.status),
    health.consecutive_failures ? ` (${health.consecutive_failures} failures)` : "",
    health.blocked_until ? [" until ", timeEl(health.blocked_until)] : "");
}

export async function render(main, { params, navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Upstreams"));
  let data;
  try {
    data = await api("/api/v1/upstreams");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.append(h("p", { class: "notice", id: "upstreams-unavailable" },
        "Upstream health is not available on this server (GET /api/v1/upstreams is not provided by this version)."));
      return;
    }
    main.append(errorBox(e));
    return;
  }
  const list = data.upstreams || [];
  const done = params.get("saved") || params.get("deleted");
  if (done) {
    main.append(h("p", { class: "notice", id: "upstreams-done", role: "status" },
      params.get("saved") ? `Saved upstream ${done}.` : `Deleted upstream ${done}.`));
  }
  const slot = h("div", { id: "upstream-form-slot" });
  const open = upstream => {
    slot.replaceChildren(upstreamForm(upstream, {
      onSaved: saved => navigate("upstreams", { saved: saved.name }, { replace: true }),
      onCancel: () => slot.replaceChildren(),
    }));
    slot.querySelector("input").focus();
  };
  const remove = async u => {
    if (!await confirmDialog(`Delete upstream ${u.name} (${u.url})? Images cached from it stay until evicted.`,
      `Delete ${u.name}`)) return;
    try {
      await api(`/api/v1/upstreams/${u.id}`, { method: "DELETE" });
      navigate("upstreams", { deleted: u.name }, { replace: true });
    } catch (e) {
      slot.replaceChildren(errorBox(e));
    }
  };
  main.append(h("div", { class: "toolbar" },
    h("button", { type: "button", id: "upstream-add", onclick: () => open(null) }, "Add an upstream")), slot);
  if (!list.length) { main.append(h("p", { class: "muted" }, "No upstream is configured.")); return; }
  const files = [...new Set(list.filter(u => u.managed_by === "config").map(u => u.config_file || "the config file"))];
  if (files.length) {
    main.append(h("p", { class: "muted", id: "upstreams-config-note" },
      "Upstreams marked config are declared in ", files.map((f, i) => [i ? ", " : "", h("code", {}, f)]),
      ": change them there (the file is applied at every start); they cannot be edited or deleted here."));
  }
  main.append(table(["Name", "Kind", "URL", "Routes", "Health", "Latency", "Last check", "Last error", ""], list.map(u => {
    const health = u.health || { status: "unknown" };
    const where = [u.registry ? "registry " + u.registry : null, u.prefix ? "prefix /" + u.prefix : null,
      (u.routes || []).join(", ") || null, `priority ${u.priority}`, u.allow_push ? "push allowed" : null]
      .filter(Boolean).join(" · ");
    const config = u.managed_by === "config";
    const actions = config
      ? h("span", { class: "muted" }, "in " + (u.config_file || "the config file"))
      : [h("button", { type: "button", class: "small edit", onclick: () => open(u) }, "Edit"), " ",
        h("button", { type: "button", class: "small danger delete", onclick: () => remove(u) }, "Delete")];
    return h("tr", { class: "upstream", dataset: { name: u.name, managedBy: u.managed_by } },
      h("td", {}, u.name, config
        ? [" ", h("span", { class: "badge managed-config", title: "Declared in the config file: change it there (applied at every start)" }, "config")]
        : ""),
      h("td", {}, u.kind), h("td", { class: "wrap" }, h("code", {}, u.url)),
      h("td", { class: "wrap" }, where),
      healthCell(health),
      h("td", { class: "num" }, health.latency_ms === null || health.latency_ms === undefined ? "" : `${Math.round(health.latency_ms)} ms`),
      h("td", {}, timeEl(health.last_check)),
      h("td", { class: "wrap" }, health.last_error || ""),
      h("td", { class: "actions" }, actions));
  }), { className: "upstreams" }));
}
