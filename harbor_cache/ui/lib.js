// Shared helpers of the console: DOM building (text only), the API client, formatting.
//
// Every value that comes from the server (file names, tags, usernames, errors)
// reaches the page through textContent or an attribute set with setAttribute:
// nothing here ever assigns innerHTML, so a name carrying markup stays text.

const TOKEN = "hc.token";
const USER = "hc.user";
const ARTIFACT_TOKEN = "hc.artifactToken";
const PERMISSIONS = "hc.permissions";

// h("a", {href: "#/x", class: "btn", onclick: fn}, "text", child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// -- session (sessionStorage only: gone with the tab, never in a URL or localStorage) --

function decodeJwtPayload(token) {
  const part = token.split(".")[1] || "";
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

// An OCI grant's glob: * matches any run of characters (/ included), ? one; the rest itself.
function globMatches(pattern, name) {
  if (pattern === "*") return true;
  const source = Array.from(pattern, c => c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("");
  return new RegExp("^" + source + "$", "s").test(name);
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get artifactToken() { return sessionStorage.getItem(ARTIFACT_TOKEN); },
  get user() {
    const raw = sessionStorage.getItem(USER);
    return raw ? JSON.parse(raw) : null;
  },
  // What the caller may do ({server_admin, grants}, from GET /api/v1/users/me): buttons the caller cannot use are
  // hidden. Only a convenience: the server checks every request itself. Before it is known, the role decides.
  get permissions() {
    const raw = sessionStorage.getItem(PERMISSIONS);
    return raw ? JSON.parse(raw) : null;
  },
  get isAdmin() {
    const p = this.permissions;
    return p ? p.server_admin === true : this.user?.role === "admin";
  },
  get canWrite() {
    const p = this.permissions;
    if (!p) return ["admin", "read-write"].includes(this.user?.role);
    return p.server_admin || p.grants.some(g => g.actions.includes("push") || g.actions.includes("admin"));
  },
  // May the caller do `action` (pull, push, delete, admin) on OCI repository `name`? (auth/permissions.py's rule.)
  mayOci(action, name) {
    const p = this.permissions;
    if (!p) return action === "pull" || this.canWrite;
    if (p.server_admin) return true;
    return p.grants.some(g => !g.repositories.startsWith("maven:") && globMatches(g.repositories, name)
      && (g.actions.includes(action) || g.actions.includes("admin")));
  },
  async loadPermissions() {
    try {
      const me = await api("/api/v1/users/me");
      sessionStorage.setItem(PERMISSIONS, JSON.stringify(me.permissions));
    } catch {
      sessionStorage.removeItem(PERMISSIONS);  // the role decides what is shown
    }
  },
  start(token, artifactToken) {
    const claims = decodeJwtPayload(token);
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, JSON.stringify({ username: claims.username, role: claims.role }));
    if (artifactToken) sessionStorage.setItem(ARTIFACT_TOKEN, artifactToken);
  },
  end() {
    for (const key of [TOKEN, USER, ARTIFACT_TOKEN, PERMISSIONS]) sessionStorage.removeItem(key);
  },
};

// -- API ------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message, code, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// auth: "management" (the /api/v1 token; a 401 ends the session and shows the login form),
// "artifact" (the Kagami token, when the user is logged in), or "none".
// exact: integers beyond 2^53 arrive as strings (`parseJsonExact`).
export async function api(path, { method = "GET", body, auth = "management", headers = {}, exact = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "omit" };
  const token = auth === "management" ? session.token : auth === "artifact" ? session.artifactToken : null;
  if (token) init.headers.Authorization = "Bearer " + token;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "the server did not answer (" + e.message + ")");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? (exact ? parseJsonExact(text) : JSON.parse(text)) : null; } catch { data = null; }
  if (!response.ok) {
    const first = data && Array.isArray(data.errors) ? data.errors[0] : null;
    const message = first?.message || `${response.status} ${response.statusText || "error"}`;
    const error = new ApiError(response.status, message, first?.code, first?.detail);
    if (response.status === 401 && auth === "management") onUnauthorized(error);
    throw error;
  }
  return data;
}

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
}

// -- formatting -------------------------------------------------------------------

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

// 1024-based like the server's total_size_human: 512 B, 1.50 KB, 120.00 MB
export function formatSize(n) {
  if (n === undefined || n === null) return "";
  if (n < 1024) return `${n} B`;
  let value = n, unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(2)} ${UNITS[unit]}`;
}

// A size as text ("1.50 MB") with the exact byte count on hover; "" when unknown.
export function sizeEl(n, unknown = "") {
  if (n === undefined || n === null) return unknown;
  return h("span", { class: "size", title: `${BigInt(n).toLocaleString("en-US")} bytes` }, formatSize(n));
}

// A repository name or path that may wrap after each "/" (never mid-word): text with <wbr> after every slash.
export function wrapName(name) {
  const parts = String(name ?? "").split("/");
  return h("span", { class: "name" }, parts.flatMap((p, i) => (i < parts.length - 1 ? [p + "/", h("wbr", {})] : [p])));
}

// JSON text with integers beyond 2^53 kept exact, as strings: the config schema's bounds
// (cache.max_size may be 2^60) would otherwise print rounded. Strings are matched whole first,
// so digits inside them are left alone.
export function parseJsonExact(text) {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.eE\d])/g,
    token => (token[0] === '"' || Number.isSafeInteger(Number(token)) ? token : `"${token}"`));
  return JSON.parse(marked);
}

// ISO 8601 from the server, shown in the browser's own time zone.
export function formatTime(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

export function timeEl(iso) {
  return h("time", { datetime: iso || undefined, title: iso || undefined }, formatTime(iso));
}

export function formatDuration(seconds) {
  seconds = Math.floor(seconds);
  const d = Math.floor(seconds / 86400), hh = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  if (d) return `${d}d ${hh}h ${m}m`;
  if (hh) return `${hh}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function shortDigest(digest) {
  if (!digest) return "";
  const [algo, hex] = digest.split(":");
  return hex ? `${algo}:${hex.slice(0, 12)}` : digest;
}

// -- widgets ------------------------------------------------------------------------

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall back below */ }
  const area = h("textarea", { readonly: true, class: "offscreen" });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch { ok = false; }
  area.remove();
  return ok;
}

// A value with a Copy button; the value stays selectable text.
export function copyable(value, label) {
  const status = h("span", { class: "copy-status", role: "status" });
  const button = h("button", {
    type: "button", class: "copy", "aria-label": "Copy " + (label || "value"),
    onclick: async () => {
      status.textContent = (await copyText(value)) ? "Copied" : "Select and copy by hand";
      setTimeout(() => { status.textContent = ""; }, 2000);
    },
  }, "Copy");
  return h("span", { class: "copyable" }, h("code", { class: "value" }, value), button, status);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error));
}

// No rows: one row saying so (`empty`, e.g. "No images cached yet"), never a bare header.
export function table(headers, rows, { caption, className, empty = "Nothing here yet." } = {}) {
  const body = rows.length ? rows
    : h("tr", { class: "empty" }, h("td", { colspan: headers.length, class: "muted" }, empty));
  return h("div", { class: "table-wrap" },
    h("table", { class: className },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map(t => h("th", { scope: "col" }, t)))),
      h("tbody", {}, body)));
}

// A modal confirmation (a <dialog>: focus stays inside, Escape cancels). Resolves true or false.
export function confirmDialog(message, confirmLabel = "Confirm") {
  return new Promise(resolve => {
    const yes = h("button", { type: "button", class: "danger", "data-confirm": "yes" }, confirmLabel);
    const no = h("button", { type: "button", "data-confirm": "no" }, "Cancel");
    const dialog = h("dialog", { class: "confirm", "aria-label": "Confirm" },
      h("p", {}, message), h("div", { class: "actions" }, no, yes));
    const done = value => { dialog.close(); dialog.remove(); resolve(value); };
    yes.addEventListener("click", () => done(true));
    no.addEventListener("click", () => done(false));
    dialog.addEventListener("cancel", e => { e.preventDefault(); done(false); });
    document.body.appendChild(dialog);
    dialog.showModal();
    no.focus();
  });
}

// Previous / range / Next. A keyset list passes its page (`next` cursor, `total_capped`): Next hands the
// cursor to `go` (the server seeks to it), and a capped count shows as "100000+".
export function pager(total, offset, limit, go, page = null) {
  const shown = page ? page.entries.length : Math.min(limit, total - offset);
  const first = total && shown ? offset + 1 : 0, last = offset + Math.max(shown, 0);
  const more = page ? Boolean(page.next) : last < total;
  return h("div", { class: "pager" },
    h("button", { type: "button", disabled: offset <= 0, onclick: () => go(Math.max(offset - limit, 0), "") }, "‹ Previous"),
    h("span", { class: "range" }, `${first}–${last} of ${total}${page && page.total_capped ? "+" : ""}`),
    h("button", { type: "button", disabled: !more, onclick: () => go(offset + limit, page ? page.next : "") }, "Next ›"));
}
