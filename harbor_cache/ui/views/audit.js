// The audit log (admin): who did what and when, newest first, paged and filterable.
// Address: #/audit?action=..&actor=..&actor_kind=user|robot&q=..&since=..&until=..&logins=show&offset=..
// Times in the filter are UTC (as the server writes them). Successful logins are routine and hidden unless
// "Show routine logins" is ticked (the API's logins=hide); failed logins always show. Details are shown as
// fields, and the export buttons download the same filtered records (GET /api/v1/audit/export, bounded).
import { api, ApiError, errorBox, h, pager, qs, session, table, timeEl } from "../lib.js";

const LIMIT = 25;

// A detail value as text: scalars as they are, lists and objects as compact JSON.
function fieldText(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value) && value.every(v => typeof v !== "object")) return value.join(", ");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export function detailFields(detail) {
  if (!detail || typeof detail !== "object") return "";
  const keys = Object.keys(detail);
  if (!keys.length) return "";
  return h("dl", { class: "fields" }, keys.map(k => [h("dt", {}, k), h("dd", {}, fieldText(detail[k]))]));
}

// datetime-local value (no zone, read as UTC) from an ISO string in the address, and back.
const toInput = iso => (iso || "").replace(/Z$/, "").slice(0, 16);
const fromInput = value => (value ? value + ":00Z" : "");

async function download(path, format, status) {
  status.textContent = "Preparing the export…";
  try {
    const response = await fetch(path, { headers: { Authorization: "Bearer " + session.token }, credentials: "omit" });
    if (!response.ok) throw new ApiError(response.status, `export failed: ${response.status}`);
    const truncated = response.headers.get("X-Audit-Truncated") === "true";
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: "audit." + format });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = truncated
      ? "Exported the newest records only (audit.export_max_rows): narrow the time range for the rest."
      : "Exported.";
  } catch (e) {
    status.textContent = e.message;
  }
}

export async function render(main, { params, navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Audit log"));
  const state = {
    action: params.get("action") || "", actor: params.get("actor") || "", q: params.get("q") || "",
    since: params.get("since") || "", until: params.get("until") || "", logins: params.get("logins") || "",
    actor_kind: ["user", "robot"].includes(params.get("actor_kind")) ? params.get("actor_kind") : "",
  };
  const filters = { action: state.action, actor: state.actor, q: state.q, since: state.since, until: state.until,
    logins: state.logins === "show" ? "show" : "hide", actor_kind: state.actor_kind };
  const offset = parseInt(params.get("offset") || "0", 10) || 0;
  let page;
  try {
    page = await api("/api/v1/audit" + qs({ ...filters, offset, limit: LIMIT }));
  } catch (e) {
    main.append(errorBox(e));
    return;
  }
  const areas = [...new Set(page.actions.map(a => a.split(".")[0]))];
  const action = h("select", { id: "a-action", name: "action" },
    h("option", { value: "" }, "all actions"),
    areas.map(a => h("option", { value: a, selected: a === state.action }, a + " (all)")),
    page.actions.map(a => h("option", { value: a, selected: a === state.action }, a)));
  const actor = h("input", { id: "a-actor", name: "actor", value: state.actor, size: 12 });
  const actorKind = h("select", { id: "a-actor-kind", name: "actor_kind" },
    [["", "users and robots"], ["user", "users"], ["robot", "robots"]].map(([value, label]) =>
      h("option", { value, selected: value === state.actor_kind }, label)));
  const text = h("input", { id: "a-q", name: "q", type: "search", value: state.q, size: 14 });
  const since = h("input", { id: "a-since", name: "since", type: "datetime-local", value: toInput(state.since) });
  const until = h("input", { id: "a-until", name: "until", type: "datetime-local", value: toInput(state.until) });
  const logins = h("input", { id: "a-logins", name: "logins", type: "checkbox", checked: state.logins === "show" });
  const form = h("form", { class: "filters", id: "audit-filters", role: "search" },
    h("label", { for: "a-action" }, "Action"), action,
    h("label", { for: "a-actor" }, "User"), actor,
    h("label", { for: "a-actor-kind" }, "Kind"), actorKind,
    h("label", { for: "a-q" }, "Contains"), text,
    h("label", { for: "a-since" }, "From (UTC)"), since,
    h("label", { for: "a-until" }, "To (UTC)"), until,
    h("span", { class: "check" }, logins, h("label", { for: "a-logins" }, "Show routine logins")),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", e => {
    e.preventDefault();
    navigate("audit", { action: action.value, actor: actor.value.trim(), actor_kind: actorKind.value, q: text.value.trim(),
      since: fromInput(since.value), until: fromInput(until.value), logins: logins.checked ? "show" : "" });
  });
  main.append(form);
  const status = h("span", { class: "muted", id: "audit-export-status", role: "status" });
  const exportButton = format => {
    const path = "/api/v1/audit/export" + qs({ ...filters, format });
    return h("button", { type: "button", id: "audit-export-" + format, dataset: { href: path },
      onclick: () => download(path, format, status) }, "Export " + format.toUpperCase());
  };
  main.append(h("div", { class: "toolbar" }, exportButton("csv"), exportButton("json"), status));
  const rows = page.entries.map(r => h("tr", { class: "audit", dataset: { action: r.action } },
    h("td", { class: "when" }, timeEl(r.at)), h("td", {}, r.actor ?? "anonymous"),
    h("td", { class: "action" }, h("code", {}, r.action)),
    h("td", { class: "wrap" }, r.target ?? ""), h("td", { class: "wrap detail" }, detailFields(r.detail)),
    h("td", {}, r.client ?? "")));
  main.append(table(["When", "User", "Action", "Target", "Detail", "Client"], rows,
    { className: "audit-log", empty: "No record matches." }));
  main.append(pager(page.total, offset, LIMIT, o => navigate("audit", { ...state, offset: o })));
}
