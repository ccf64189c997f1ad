// Search results (any signed-in user): repositories, tags, manifests and Maven artifacts, best first.
// Address: #/search?q=..&kind=..&cursor=.. ; the header's search box comes here (app.js).
import { api, errorBox, formatSize, h, qs, shortDigest, table, timeEl } from "../lib.js";

const LIMIT = 25;
const KINDS = ["image", "tag", "manifest", "maven"];

function what(r) {
  if (r.kind === "maven") return `${r.group}:${r.name}:${r.version ?? ""}`;
  if (r.kind === "tag") return `${r.repository}:${r.tag}`;
  if (r.kind === "manifest") return `${r.repository}@${shortDigest(r.digest)}`;
  return r.repository;
}

export async function render(main, { params, navigate }) {
  const q = params.get("q") || "";
  const kind = params.get("kind") || "";
  const cursor = params.get("cursor") || "";
  main.append(h("h1", { tabindex: "-1" }, "Search"));
  const box = document.getElementById("search-box");
  if (box && box.value !== q) box.value = q;
  const select = h("select", { id: "s-kind", name: "kind" }, h("option", { value: "" }, "everything"),
    KINDS.map(k => h("option", { value: k, selected: k === kind }, k)));
  select.addEventListener("change", () => navigate("search", { q, kind: select.value }));
  main.append(h("p", { class: "muted" },
    "Names contain the text; sha256:<hex> finds manifests; g: a: v: (e.g. g:org.example a:lib v:1.*) finds Maven artifacts. ",
    h("label", { for: "s-kind" }, "Show "), select));
  if (!q.trim()) {
    main.append(h("p", {}, "Type in the search box above."));
    return;
  }
  let page;
  try {
    page = await api("/api/v1/search" + qs({ q, kind, cursor, limit: LIMIT }));
  } catch (e) {
    main.append(errorBox(e));
    return;
  }
  const rows = page.results.map(r => h("tr", { class: "search-hit", dataset: { kind: r.kind } },
    h("td", {}, r.kind),
    h("td", { class: "wrap" }, h("a", { href: r.link.replace(/^\/ui\//, ""), class: "hit" }, what(r)),
      r.kind === "maven" ? h("span", { class: "muted" }, " " + r.path.split("/").pop()) : ""),
    h("td", {}, r.kind === "maven" ? r.repository : (r.hosted ? "hosted" : "cached")),
    h("td", {}, r.size == null ? "" : formatSize(r.size)),
    h("td", {}, timeEl(r.updated_at))));
  main.append(table(["Kind", "Result", "Where", "Size", "Updated"], rows, { className: "search-results" }));
  if (!rows.length) main.append(h("p", { class: "muted", id: "no-hits" }, "Nothing matches."));
  const nav = h("p", { class: "pager" });
  if (cursor) nav.append(h("button", { type: "button", onclick: () => history.back() }, "Previous"), " ");
  if (page.next) nav.append(h("button", { type: "button", id: "s-next",
    onclick: () => navigate("search", { q, kind, cursor: page.next }) }, "Next"));
  main.append(nav);
}
