// Container images: repositories (hosted and cached), tags, and one manifest.
// Address: #/images, #/images?repo=<name>, #/images?repo=<name>&ref=<tag or digest>.
import { api, confirmDialog, copyable, errorBox, h, qs, session, shortDigest, sizeEl, table, timeEl, wrapName } from "../lib.js";

const PAGE = 100;
const link = (repo, ref, text, attrs = {}) =>
  h("a", { href: "#/images" + qs({ repo, ref }), ...attrs }, text);

// The API answers a page at a time (`next`): "Load more" appends the following page to the table.
function loadMore(main, tableEl, next, fetchPage, rowOf) {
  if (!next) return;
  const button = h("button", { type: "button", class: "load-more", onclick: async () => {
    button.disabled = true;
    try {
      const page = await fetchPage(next);
      const body = tableEl.querySelector("tbody");
      for (const row of page.rows) body.append(rowOf(row));
      button.remove();
      loadMore(main, tableEl, page.next, fetchPage, rowOf);
    } catch (e) {
      button.disabled = false;
      main.append(errorBox(e));
    }
  } }, "Load more");
  main.append(button);
}

// One row per upstream image: containerd's ?ns=docker.io and a mirror's library/test are one image
// of docker.io; the paths clients used are listed under the name.
async function repositories(main) {
  main.append(h("h1", { tabindex: "-1" }, "Container images"));
  const first = await api("/api/v1/images" + qs({ limit: PAGE }));
  const rowOf = r =>
    h("tr", { class: "image", dataset: { registry: r.registry, image: r.image } },
      h("td", { class: "wrap" }, link(r.name, null, wrapName(r.image), { class: "repo-link" }),
        r.paths.length > 1 || r.paths[0] !== r.image
          ? h("div", { class: "muted paths" }, "as ", r.paths.flatMap((p, i) => [i ? ", " : "", h("code", {}, wrapName(p))]))
          : null),
      h("td", { class: "registry" }, r.registry || h("span", { class: "muted" }, "this server")),
      h("td", {}, r.hosted ? h("span", { class: "badge hosted" }, "hosted") : ""),
      h("td", {}, r.cached ? h("span", { class: "badge cached" }, "cached") : ""),
      h("td", { class: "num" }, r.tag_count),
      h("td", {}, timeEl(r.updated_at)));
  const tableEl = table(["Repository", "Registry", "Hosted", "Cached", "Tags", "Updated"], first.repositories.map(rowOf),
    { className: "images", empty: "No images cached yet. Pull or push through this server." });
  main.append(tableEl);
  loadMore(main, tableEl, first.next, async cursor => {
    const page = await api("/api/v1/images" + qs({ limit: PAGE, cursor }));
    return { rows: page.repositories, next: page.next };
  }, rowOf);
}

async function tags(main, repo) {
  main.append(h("nav", { class: "crumbs-bar", "aria-label": "Breadcrumbs" },
    h("ol", { class: "crumbs" }, h("li", {}, h("a", { href: "#/images" }, "Images")),
      h("li", {}, h("span", { "aria-current": "location" }, repo)))));
  main.append(h("h1", { tabindex: "-1", class: "wrap" }, wrapName(repo)));
  const status = h("p", { role: "status" });
  main.append(status);
  const data = await api("/api/v1/images/tags" + qs({ repository: repo, limit: PAGE }));
  const rowOf = t => {
    const remove = t.kind === "hosted" && session.mayOci("delete", repo)
      ? h("button", { type: "button", class: "danger small", "aria-label": "Delete tag " + t.tag, onclick: async () => {
          if (!(await confirmDialog(`Delete 1 tag of ${repo} (${t.tag})? The manifest stays reachable by digest.`,
            `Delete tag ${t.tag}`))) return;
          try {
            await api("/api/v1/images/tags" + qs({ repository: repo, tag: t.tag }), { method: "DELETE" });
            status.textContent = `Deleted ${repo}:${t.tag}.`;
            row.remove();
          } catch (e) {
            status.textContent = e.message;
          }
        } }, "Delete")
      : "";
    const row = h("tr", { dataset: { tag: t.tag } },
      h("td", {}, link(repo, t.tag, t.tag, { class: "tag-link" })),
      h("td", {}, h("span", { class: "badge " + t.kind }, t.kind)),
      h("td", {}, link(repo, t.digest, shortDigest(t.digest), { title: t.digest })),
      h("td", { class: "num" }, sizeEl(t.size)),
      h("td", {}, timeEl(t.updated_at)),
      h("td", {}, remove));
    return row;
  };
  const tableEl = table(["Tag", "Kind", "Digest", "Size", "Updated", ""], data.tags.map(rowOf),
    { className: "tags", empty: "No tags; manifests are cached by digest only." });
  main.append(tableEl);
  loadMore(main, tableEl, data.next, async cursor => {
    const page = await api("/api/v1/images/tags" + qs({ repository: repo, limit: PAGE, cursor }));
    return { rows: page.tags, next: page.next };
  }, rowOf);
}

async function manifest(main, repo, ref) {
  const m = await api("/api/v1/images/manifest" + qs({ repository: repo, reference: ref }));
  main.append(h("nav", { class: "crumbs-bar", "aria-label": "Breadcrumbs" },
    h("ol", { class: "crumbs" }, h("li", {}, h("a", { href: "#/images" }, "Images")),
      h("li", {}, link(repo, null, repo)), h("li", {}, h("span", { "aria-current": "location" }, ref)))));
  main.append(h("h1", { tabindex: "-1", class: "wrap" }, wrapName(`${repo}${ref.includes(":") ? "@" : ":"}${ref}`)));
  main.append(h("dl", { class: "card facts", id: "manifest-facts" },
    h("dt", {}, "Media type"), h("dd", { id: "manifest-media-type" }, m.media_type),
    h("dt", {}, "Digest"), h("dd", { id: "manifest-digest" }, copyable(m.digest, "digest")),
    h("dt", {}, "Manifest size"), h("dd", {}, sizeEl(m.size)),
    m.kind === "image" ? [h("dt", {}, "Image size"), h("dd", { id: "image-size" }, sizeEl(m.image_size))] : null,
    h("dt", {}, "Pull"), h("dd", { class: "pull" }, copyable(m.pull.docker, "docker pull command"),
      copyable(m.pull.podman, "podman pull command")),
    m.artifact_type ? [h("dt", {}, "Artifact type"), h("dd", {}, m.artifact_type)] : null));
  if (m.kind === "index") {
    main.append(h("h2", {}, `Platforms (${m.platforms.length})`));
    main.append(table(["Platform", "Digest", "Image size", "Media type"], m.platforms.map(p => {
      const name = [p.os, p.architecture, p.variant].filter(Boolean).join("/") || "unknown";
      return h("tr", { class: "platform" },
        h("td", {}, link(repo, p.digest, name, { class: "platform-link" })),
        h("td", {}, h("code", { title: p.digest }, shortDigest(p.digest))),
        h("td", { class: "num image-size" }, p.image_size === null
          ? h("span", { class: "muted", title: "This platform is not cached here; its manifest is " + p.size + " bytes" }, "not cached")
          : sizeEl(p.image_size)),
        h("td", {}, p.media_type || ""));
    }), { className: "platforms", empty: "This index lists no platforms." }));
  } else {
    if (m.config) {
      main.append(h("p", {}, "Config: ", h("code", { title: m.config.digest }, shortDigest(m.config.digest)),
        " (", sizeEl(m.config.size), ")"));
    }
    main.append(h("h2", {}, `Layers (${m.layers.length})`));
    const rows = m.layers.map((l, i) => h("tr", { class: "layer" },
      h("td", { class: "num" }, i + 1),
      h("td", {}, h("code", { title: l.digest }, shortDigest(l.digest))),
      h("td", { class: "num" }, sizeEl(l.size)),
      h("td", {}, l.media_type || "")));
    rows.push(h("tr", { class: "total" }, h("th", { scope: "row", colspan: 2 }, "Total"),
      h("td", { class: "num", id: "layers-total" }, sizeEl(m.total_size)), h("td", {})));
    main.append(table(["#", "Digest", "Size", "Media type"], rows, { className: "layers" }));
  }
  const notes = Object.entries(m.annotations || {});
  if (notes.length) {
    main.append(h("h2", {}, "Annotations"));
    main.append(table(["Key", "Value"], notes.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "annotation" }, v))),
      { className: "annotations" }));
  }
}

export async function render(main, { params }) {
  const repo = params.get("repo"), ref = params.get("ref");
  try {
    if (repo && ref) await manifest(main, repo, ref);
    else if (repo) await tags(main, repo);
    else await repositories(main);
  } catch (e) {
    if (!main.querySelector("h1")) main.append(h("h1", { tabindex: "-1" }, repo || "Container images"));
    main.append(errorBox(e));
  }
}
