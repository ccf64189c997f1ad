// The audit log (admin): who did what and when, newest first, paged and filterable.
// Address: #/audit?action=..&actor=..&q=..&offset=..
import { api, errorBox, h, pager, qs, table, timeEl } from "../lib.js";

const LIMIT = 25;

export async function render(main, { params, navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Audit log"));
  const state = { action: params.get("action") || "", actor: params.get("actor") || "", q: params.get("q") || "" };
  const offset = parseInt(params.get("offset") || "0", 10) || 0;
  let page;
  try {
    page = await api("/api/v1/audit" + qs({ ...state, offset, limit: LIMIT }));
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
  const text = h("input", { id: "a-q", name: "q", type: "search", value: state.q, size: 14 });
  const form = h("form", { class: "filters", id: "audit-filters", role: "search" },
    h("label", { for: "a-action" }, "Action"), action,
    h("label", { for: "a-actor" }, "User"), actor,
    h("label", { for: "a-q" }, "Contains"), text,
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", e => {
    e.preventDefault();
    navigate("audit", { action: action.value, actor: actor.value.trim(), q: text.value.trim() });
  });
  main.append(form);
  const rows = page.entries.map(r => h("tr", { class: "audit", dataset: { action: r.action } },
    h("td", {}, timeEl(r.at)), h("td", {}, r.actor ?? "anonymous"), h("td", {}, h("code", {}, r.action)),
    h("td", { class: "wrap" }, r.target ?? ""), h("td", { class: "wrap" }, r.detail ? JSON.stringify(r.detail) : ""),
    h("td", {}, r.client ?? "")));
  main.append(table(["When", "User", "Action", "Target", "Detail", "Client"], rows,
    { className: "audit-log", empty: "No record matches." }));
  main.append(pager(page.total, offset, LIMIT, o => navigate("audit", { ...state, offset: o })));
}
