// The Kagami repository browser: GET /repositories, /repositories/{id}/browse, /repositories/{id}/info.
// Address: #/maven?repo=<id>&path=<dir>&file=<file path>, so reload and back keep the place.
import { api, ApiError, clear, copyable, errorBox, formatSize, h, session, table, timeEl } from "../lib.js";

function artifactUrl(repo, path) {
  return "/artifacts/" + encodeURIComponent(repo) + "/" + path.split("/").map(encodeURIComponent).join("/");
}

function href(repo, path, file) {
  const q = new URLSearchParams({ repo });
  if (path) q.set("path", path);
  if (file) q.set("file", file);
  return "#/maven?" + q.toString();
}

// Private repositories: the Kagami token of this tab (minted at login), else none.
function kagamiAuth(repo) {
  return repo?.isPrivate && session.artifactToken ? "artifact" : "none";
}

async function download(repo, path, name, status) {
  status.textContent = "Downloading…";
  try {
    const response = await fetch(artifactUrl(repo.id, path), {
      headers: { Authorization: "Bearer " + session.artifactToken }, credentials: "omit" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: name, class: "offscreen" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = "";
  } catch (e) {
    status.textContent = "Download failed: " + e.message;
  }
}

function infoPanel(repo, info) {
  const status = h("span", { role: "status" });
  const link = repo.isPrivate
    ? h("a", { href: artifactUrl(repo.id, info.path), id: "download-link", class: "button",
        onclick: e => { e.preventDefault(); download(repo, info.path, info.name, status); } }, "Download")
    : h("a", { href: artifactUrl(repo.id, info.path), id: "download-link", class: "button", download: info.name },
        "Download");
  const rows = [
    ["Path", copyable(info.path, "path")],
    ["Size", h("span", { id: "info-size", title: `${info.size} bytes` }, formatSize(info.size))],
    ["SHA-1", info.sha1 ? copyable(info.sha1, "SHA-1") : "not recorded"],
    ["SHA-256", info.sha256 ? copyable(info.sha256, "SHA-256") : "not recorded"],
    ["Content type", copyable(info.contentType, "content type")],
    ["Last modified", timeEl(info.lastModified)],
  ];
  return h("aside", { class: "card info", id: "info-panel", "aria-labelledby": "info-title" },
    h("h2", { id: "info-title" }, info.name),
    h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, v)])),
    h("p", {}, link, " ", status));
}

export async function render(main, { params, navigate }) {
  const heading = h("h1", { tabindex: "-1" }, "Maven repositories");
  main.append(heading);
  let repos;
  try {
    repos = (await api("/repositories", { auth: "none" })).repositories;
  } catch (e) {
    main.append(errorBox(e));
    return;
  }
  const repoId = params.get("repo") || (repos[0] && repos[0].id);
  const path = params.get("path") || "";
  const file = params.get("file");
  const select = h("select", { id: "repo-select", "aria-label": "Repository" },
    repos.map(r => h("option", { value: r.id, selected: r.id === repoId },
      r.id + (r.isPrivate ? " (private)" : ""))));
  select.addEventListener("change", () => navigate("maven", { repo: select.value }));
  main.append(h("div", { class: "toolbar" }, h("label", { for: "repo-select" }, "Repository "), select));
  const repo = repos.find(r => r.id === repoId);
  if (!repo) {
    main.append(h("p", {}, repos.length ? "No such repository." : "No Maven repository is configured."));
    return;
  }
  main.append(h("p", { class: "muted", id: "repo-summary" },
    `${repo.url} · ${repo.artifactCount} cached files · ${formatSize(repo.totalSize)} · updated `,
    timeEl(repo.lastUpdated), repo.isPrivate ? " · private" : ""));
  if (repo.isPrivate && !session.artifactToken) {
    main.append(h("p", { class: "notice" }, "This repository is private. ",
      h("a", { href: "#/login?next=" + encodeURIComponent(location.hash) }, "Log in"), " to browse it."));
    return;
  }
  const listing = h("section", { id: "listing", "aria-label": "Directory" });
  const panel = h("div", { id: "panel" });
  main.append(h("div", { class: "browse" }, listing, panel));

  let page;
  try {
    page = await api(`/repositories/${encodeURIComponent(repo.id)}/browse` + (path ? "?path=" + encodeURIComponent(path) : ""),
      { auth: kagamiAuth(repo) });
  } catch (e) {
    listing.append(errorBox(e instanceof ApiError && e.status === 404 ? "Nothing cached under this path." : e));
    return;
  }

  // Breadcrumbs from currentPath: root, then one link per segment.
  const crumbs = h("ol", { class: "crumbs" });
  const segments = page.currentPath ? page.currentPath.split("/") : [];
  crumbs.append(h("li", {}, segments.length ? h("a", { href: href(repo.id, "") }, repo.id)
    : h("span", { "aria-current": "location" }, repo.id)));
  segments.forEach((segment, i) => {
    const sub = segments.slice(0, i + 1).join("/");
    crumbs.append(h("li", {}, i === segments.length - 1 ? h("span", { "aria-current": "location" }, segment)
      : h("a", { href: href(repo.id, sub) }, segment)));
  });
  const up = page.parentPath === null
    ? h("button", { type: "button", id: "up", disabled: true, title: "Already at the root" }, "↑ Up")
    : h("a", { href: href(repo.id, page.parentPath), id: "up", class: "button" }, "↑ Up");
  listing.append(h("nav", { class: "crumbs-bar", "aria-label": "Breadcrumbs" }, up, crumbs));

  const rows = page.entries.map(entry => {
    const isDir = entry.type === "directory";
    const icon = h("span", { class: "icon " + (isDir ? "icon-dir" : "icon-file"), "aria-hidden": "true" });
    const name = isDir
      ? h("a", { href: href(repo.id, entry.path), class: "entry dir", dataset: { path: entry.path } }, entry.name)
      : h("a", { href: href(repo.id, path, entry.path), class: "entry file", dataset: { path: entry.path } },
          entry.name);
    return h("tr", { class: isDir ? "dir" : "file" },
      h("td", {}, icon, h("span", { class: "sr" }, isDir ? "Directory " : "File "), name),
      h("td", { class: "num" }, isDir ? "" : formatSize(entry.size)),
      h("td", {}, timeEl(entry.lastModified)));
  });
  listing.append(rows.length ? table(["Name", "Size", "Last modified"], rows, { className: "entries" })
    : h("p", { class: "muted" }, "This directory is empty."));

  if (file) {
    try {
      const info = await api(`/repositories/${encodeURIComponent(repo.id)}/info?path=` + encodeURIComponent(file),
        { auth: kagamiAuth(repo) });
      clear(panel).append(infoPanel(repo, info));
    } catch (e) {
      clear(panel).append(errorBox(e));
    }
  }
}
