// The console's router: one page per "#/<page>?<query>" address, so reload and the back button keep the place.
import { clear, h, session, setUnauthorizedHandler } from "./lib.js";
import * as account from "./views/account.js";
import * as audit from "./views/audit.js";
import * as cache from "./views/cache.js";
import * as config from "./views/config.js";
import * as dashboard from "./views/dashboard.js";
import * as gc from "./views/gc.js";
import * as images from "./views/images.js";
import * as login from "./views/login.js";
import * as maven from "./views/maven.js";
import * as policies from "./views/policies.js";
import * as search from "./views/search.js";
import * as upstreams from "./views/upstreams.js";
import * as users from "./views/users.js";

// [route, label, module, who may see it: "all" | "user" | "admin"]
const PAGES = [
  ["maven", "Maven", maven, "all"],
  ["images", "Images", images, "user"],
  ["dashboard", "Dashboard", dashboard, "user"],
  ["account", "Account", account, "user"],
  ["cache", "Cache", cache, "admin"],
  ["users", "Users", users, "admin"],
  ["groups", "Groups", await import("./views/groups.js"), "admin"],
  ["config", "Config", config, "admin"],
  ["upstreams", "Upstreams", upstreams, "admin"],
  ["audit", "Audit", audit, "admin"],
  ["policies", "Policies", policies, "admin"],
  ["gc", "Garbage collection", gc, "admin"],
  ["quotas", "Quotas", await import("./views/quotas.js"), "admin"],
  ["sync", "Sync", await import("./views/sync.js"), "admin"],
  ["robots", "Robots", await import("./views/robots.js"), "admin"],
];

let cleanup = null;
let generation = 0;

export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [page, query] = raw.split("?");
  return { page: page || "maven", params: new URLSearchParams(query || "") };
}

export function navigate(page, params = {}, { replace = false } = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  const q = query.toString();
  const target = "#/" + page + (q ? "?" + q : "");
  if (replace) history.replaceState(null, "", target);
  if (location.hash === target || replace) render();
  else location.hash = target;
}

function allowed(who) {
  if (who === "all") return true;
  if (who === "user") return !!session.token;
  return session.isAdmin;
}

function renderNav(current) {
  const nav = clear(document.getElementById("nav"));
  const list = h("ul", {});
  for (const [route, label, , who] of PAGES) {
    if (!allowed(who)) continue;
    list.appendChild(h("li", {}, h("a", { href: "#/" + route, "aria-current": route === current ? "page" : undefined },
      label)));
  }
  if (session.token) {
    list.appendChild(h("li", { class: "who" }, h("span", { class: "user" }, session.user.username),
      h("button", { type: "button", id: "logout", onclick: () => { session.end(); navigate("login"); } }, "Log out")));
  } else {
    list.appendChild(h("li", {}, h("a", { href: "#/login", "aria-current": current === "login" ? "page" : undefined },
      "Log in")));
  }
  nav.appendChild(list);
}

// Each render writes into a fresh container: a slower render of an earlier address (Back pressed
// twice quickly) finishes into a container that is no longer on the page, never into the current one.
async function render() {
  if (cleanup) { try { cleanup(); } catch { /* a view's timer */ } cleanup = null; }
  const mine = ++generation;
  const { page, params } = parseHash();
  const main = h("div", { class: "view" });
  clear(document.getElementById("main")).appendChild(main);
  renderNav(page);
  const keep = stop => {
    if (mine === generation) cleanup = stop || null;
    else if (stop) stop();
  };
  const entry = PAGES.find(p => p[0] === page);
  const ctx = { navigate, params, here: location.hash };
  if (page === "oidc") {  // back from the identity provider: the token is in the fragment; keep it, then drop it
    const token = params.get("token");
    if (token) session.start(token);
    navigate(token ? "dashboard" : "login", {}, { replace: true });
    return;
  }
  if (page === "login") {
    document.title = "Log in · harbor-cache";
    keep(await login.render(main, ctx));
    return;
  }
  if (page === "search") {  // the header's search box (index.html), not a nav entry
    if (!session.token) { navigate("login", { next: location.hash }, { replace: true }); return; }
    document.title = "Search · harbor-cache";
    keep(await search.render(main, ctx));
    return;
  }
  if (!entry) {
    document.title = "Not found · harbor-cache";
    main.appendChild(h("h1", { tabindex: "-1" }, "Not found"));
    main.appendChild(h("p", {}, "There is no such page. ", h("a", { href: "#/maven" }, "Back to the repositories")));
    return;
  }
  if (!allowed(entry[3])) {
    if (!session.token) { navigate("login", { next: location.hash }, { replace: true }); return; }
    main.appendChild(h("h1", { tabindex: "-1" }, entry[1]));
    main.appendChild(h("p", { class: "error", role: "alert" }, "Your role may not see this page."));
    return;
  }
  document.title = entry[1] + " · harbor-cache";
  keep(await entry[2].render(main, ctx));
}

// A 401 from the management API: the token expired or the user changed; back to the login form.
setUnauthorizedHandler(() => {
  const next = location.hash;
  session.end();
  if (parseHash().page !== "login") navigate("login", { next, expired: "1" });
});

document.getElementById("header-search").addEventListener("submit", e => {
  e.preventDefault();
  navigate("search", { q: document.getElementById("search-box").value.trim() });
});
window.addEventListener("hashchange", render);
// A full load (reload, bookmark) asks again what the caller may do: grants may have changed since login.
(session.token ? session.loadPermissions() : Promise.resolve()).then(render);
