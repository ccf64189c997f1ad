// Cache entries: paged, sortable, filterable; delete one; clean up and clear behind a confirmation.
// Address: #/cache?sort=..&order=..&front=..&kind=..&repository=..&q=..&offset=..&cursor=..
// Next follows the API's `next` cursor (a seek, as cheap deep as shallow); offset only numbers the rows.
import { api, confirmDialog, errorBox, h, pager, qs, shortDigest, sizeEl, table, timeEl, wrapName } from "../lib.js";

const LIMIT = 25;
const SORTS = [["last_access", "Last access"], ["size", "Size"], ["hits", "Hits"], ["created", "Created"],
  ["repository", "Repository"]];

function select(id, label, options, value) {
  const el = h("select", { id, name: id },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return [h("label", { for: id }, label), el];
}

export async function render(main, { params, navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Cache"));
  const state = Object.fromEntries(["sort", "order", "front", "kind", "repository", "q", "offset", "cursor"]
    .map(k => [k, params.get(k) || ""]));
  state.sort ||= "last_access";
  state.order ||= "desc";
  const offset = parseInt(state.offset || "0", 10) || 0;
  const go = changes => navigate("cache", { ...state, cursor: "", ...changes });

  const status = h("p", { role: "status", id: "cache-status" });
  const actions = h("div", { class: "toolbar" },
    h("button", { type: "button", id: "cleanup", onclick: async () => {
      if (!(await confirmDialog("Run eviction and retention now: proxied entries over the size limit or past " +
        "their retention are deleted. Hosted content is kept.", "Clean up now"))) return;
      try { status.textContent = `Cleanup removed ${(await api("/api/v1/cache/cleanup", { method: "POST" })).cleaned} entries.`; }
      catch (e) { status.textContent = e.message; }
    } }, "Clean up now"),
    h("button", { type: "button", class: "danger", id: "clear-cache", onclick: async () => {
      if (!(await confirmDialog("Delete every proxied entry of every front and repository, whatever the filters " +
        "show? Hosted content is kept.", "Clear the whole cache"))) return;
      try {
        status.textContent = `Cleared ${(await api("/api/v1/cache", { method: "DELETE" })).cleared} entries.`;
        go({ offset: 0 });
      } catch (e) { status.textContent = e.message; }
    } }, "Clear cache…"));

  const repository = h("input", { id: "f-repository", name: "repository", value: state.repository, size: 14 });
  const text = h("input", { id: "f-q", name: "q", type: "search", value: state.q, size: 14 });
  const form = h("form", { class: "filters", id: "cache-filters", role: "search" },
    select("f-front", "Front", [["", "all"], ["oci", "OCI"], ["maven", "Maven"]], state.front),
    select("f-kind", "Kind", [["", "all"], ["proxy", "proxied"], ["hosted", "hosted"]], state.kind),
    h("label", { for: "f-repository" }, "Repository"), repository,
    h("label", { for: "f-q" }, "Contains"), text,
    select("f-sort", "Sort by", SORTS, state.sort),
    select("f-order", "Order", [["desc", "descending"], ["asc", "ascending"]], state.order),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", e => {
    e.preventDefault();
    const f = new FormData(form);
    go({ front: f.get("f-front"), kind: f.get("f-kind"), repository: repository.value.trim(), q: text.value.trim(),
      sort: f.get("f-sort"), order: f.get("f-order"), offset: 0 });
  });
  main.append(actions, status, form);

  let page;
  try {
    page = await api("/api/v1/cache/entries" + qs({ ...state, offset, limit: LIMIT, cursor: state.cursor || null }));
  } catch (e) {
    main.append(errorBox(e));
    return;
  }
  const sortHeader = (key, label) => h("button", { type: "button", class: "link sort", "aria-label": "Sort by " + label,
    onclick: () => go({ sort: key, order: state.sort === key && state.order === "desc" ? "asc" : "desc", offset: 0 }) },
    label + (state.sort === key ? (state.order === "desc" ? " ▼" : " ▲") : ""));
  // A blob is named after an image that uses it (the API knows hosted claims and stored proxied manifests).
  const owner = e => e.repository ? wrapName(e.repository)
    : e.image ? [wrapName(e.image), e.image_count > 1 ? h("span", { class: "muted" }, ` +${e.image_count - 1}`) : null]
      : h("span", { class: "muted" }, "(no image known)");
  const what = e => (e.type === "blob" ? "blob" : e.type === "manifest" ? "manifest" : "file");
  const rows = page.entries.map(e => {
    const row = h("tr", { dataset: { id: e.id } },
      h("td", {}, e.front), h("td", {}, h("span", { class: "badge " + e.kind }, e.kind === "proxy" ? "proxied" : "hosted")),
      h("td", { class: "wrap owner" }, owner(e)),
      h("td", { class: "wrap" }, e.type === "maven" ? wrapName(e.key) : h("code", { title: e.key }, shortDigest(e.key))),
      h("td", { class: "num" }, sizeEl(e.size)), h("td", { class: "num hits" }, e.hits),
      h("td", {}, timeEl(e.last_access)), h("td", {}, timeEl(e.created_at)),
      h("td", {}, e.kind === "proxy" ? h("button", { type: "button", class: "small", "aria-label": "Delete entry " + e.key,
        onclick: async () => {
          const of = e.repository || e.image;
          if (!(await confirmDialog(`Delete the cached ${what(e)} ${e.type === "maven" ? e.key : shortDigest(e.key)}` +
            `${of ? " of " + of : ""} (${sizeEl(e.size).textContent})? It is fetched again on the next request.`,
            `Delete ${what(e)}`))) return;
          try { await api(`/api/v1/cache/entries/${e.id}`, { method: "DELETE" }); row.remove(); status.textContent = "Deleted."; }
          catch (err) { status.textContent = err.message; }
        } }, "Delete") : ""));
    return row;
  });
  main.append(table(["Front", "Kind", "Repository / image", "Key", sortHeader("size", "Size"), sortHeader("hits", "Hits"),
    sortHeader("last_access", "Last access"), sortHeader("created", "Created"), ""], rows,
    { className: "entries", empty: Object.values({ ...state, sort: "", order: "", offset: "", cursor: "" }).some(Boolean)
      ? "No entry matches these filters." : "Nothing is cached yet." }));
  main.append(pager(page.total, offset, LIMIT, (o, cursor) => go({ offset: o, cursor }), page));
}
