// Upstreams: each OCI upstream and Maven repository with its URL, health, last error and latency (read-only).
// Built against GET /api/v1/upstreams; a server without that endpoint (404) gets a clear "not available" state.
// Upstreams the config file declares ("managed_by": "config") carry a small "config" label: they change there only.
import { api, ApiError, errorBox, h, table, timeEl } from "../lib.js";

export async function render(main) {
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
  if (!list.length) { main.append(h("p", { class: "muted" }, "No upstream is configured.")); return; }
  main.append(table(["Name", "Kind", "URL", "Routes", "Health", "Latency", "Last check", "Last error"], list.map(u => {
    const health = u.health || { status: "unknown" };
    const where = [u.registry ? "registry " + u.registry : null, u.prefix ? "prefix /" + u.prefix : null,
      (u.routes || []).join(", ") || null, `priority ${u.priority}`, u.allow_push ? "push allowed" : null]
      .filter(Boolean).join(" · ");
    return h("tr", { class: "upstream", dataset: { name: u.name } },
      h("td", {}, u.name, u.managed_by === "config"
        ? [" ", h("span", { class: "badge managed-config", title: "Declared in the config file: change it there (applied at every start)" }, "config")]
        : ""),
      h("td", {}, u.kind), h("td", { class: "wrap" }, h("code", {}, u.url)),
      h("td", { class: "wrap" }, where),
      h("td", {}, h("span", { class: "badge " + health.status }, health.status),
        health.consecutive_failures ? ` (${health.consecutive_failures} failures)` : "",
        health.blocked_until ? [" until ", timeEl(health.blocked_until)] : ""),
      h("td", { class: "num" }, health.latency_ms === null || health.latency_ms === undefined ? "" : `${Math.round(health.latency_ms)} ms`),
      h("td", {}, timeEl(health.last_check)),
      h("td", { class: "wrap" }, health.last_error || ""));
  }), { className: "upstreams" }));
}
