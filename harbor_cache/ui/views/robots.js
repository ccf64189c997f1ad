// Robot accounts for CI: list (state, expiry, last use), create, disable / enable, rotate the secret, delete.
// A secret is in the answer of create and rotate only: it is shown once, above the list, with a Copy button and a
// warning, and is gone from the page at the next render (it is never stored in the browser).
import { api, confirmDialog, copyable, errorBox, h, table, timeEl } from "../lib.js";

const EXAMPLE_GRANTS = '[{"repositories": "team-a/*", "actions": ["pull", "push"]}]';
let shownOnce = null;  // { name, secret } from the last create or rotate, shown by the next render only

function secretPanel({ name, secret }) {
  return h("div", { class: "notice robot-secret", id: "robot-secret", role: "status" },
    h("p", {}, h("strong", {}, `Secret of ${name}`), " — copy it now: it is shown only this once and cannot be ",
      "retrieved again (rotate to get a new one). Store it in your CI's secret store, never in a repository."),
    h("p", {}, "Login: ", h("code", {}, name)),
    copyable(secret, "the secret of " + name));
}

function state(r) {
  if (r.disabled) return "disabled";
  if (r.expires_at && Date.parse(r.expires_at) <= Date.now()) return "expired";
  return "active";
}

function grantsText(grants) {
  return grants.map(g => `${g.repositories}: ${g.actions.join(", ")}`).join("; ") || "—";
}

export async function render(main, { navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Robot accounts"));
  const reload = () => navigate("robots", {}, { replace: true });
  if (shownOnce) { main.append(secretPanel(shownOnce)); shownOnce = null; }

  const createError = h("p", { class: "error", role: "alert", id: "create-robot-error", hidden: true });
  const name = h("input", { id: "new-robot-name", name: "name", autocomplete: "off", required: true,
    pattern: "[a-z0-9._\\-]{1,64}", placeholder: "ci-team-a" });
  const description = h("input", { id: "new-robot-description", name: "description", autocomplete: "off" });
  const grants = h("textarea", { id: "new-robot-grants", name: "grants", rows: 3, cols: 60, spellcheck: "false" });
  grants.value = EXAMPLE_GRANTS;
  const days = h("input", { id: "new-robot-days", name: "expires_in_days", type: "number", min: "1", placeholder: "365" });
  const never = h("input", { id: "new-robot-never", name: "never", type: "checkbox" });
  const form = h("form", { class: "card inline-form", id: "create-robot" },
    h("h2", {}, "New robot account"),
    h("label", { for: "new-robot-name" }, "Name (login: robot$<name>)"), name,
    h("label", { for: "new-robot-description" }, "Description"), description,
    h("label", { for: "new-robot-grants" }, "Grants (JSON)"), grants,
    h("label", { for: "new-robot-days" }, "Expires in days (empty: the maximum, robots.max_expiry_days)"), days,
    h("span", { class: "check" }, never, h("label", { for: "new-robot-never" }, "Never expires")),
    h("button", { type: "submit" }, "Create"), createError);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    createError.hidden = true;
    const body = { name: name.value.trim(), description: description.value };
    try {
      body.grants = JSON.parse(grants.value);
    } catch {
      createError.textContent = "Grants must be JSON: " + EXAMPLE_GRANTS;
      createError.hidden = false;
      return;
    }
    if (never.checked) body.expires_in_days = -1;
    else if (days.value) body.expires_in_days = Number(days.value);
    try {
      const robot = await api("/api/v1/robots", { method: "POST", body });
      shownOnce = { name: robot.name, secret: robot.secret };
      reload();
    } catch (err) {
      createError.textContent = err.message;
      createError.hidden = false;
    }
  });

  let listed;
  try { listed = await api("/api/v1/robots"); } catch (e) { main.append(errorBox(e)); return; }
  const rows = listed.robots.map(r => {
    const err = h("p", { class: "error", role: "alert", hidden: true });
    const fail = e => { err.textContent = e.message; err.hidden = false; };
    const act = async (fn) => { err.hidden = true; try { await fn(); } catch (e) { fail(e); } };
    const toggle = h("button", { type: "button", class: "small", "aria-label": `${r.disabled ? "Enable" : "Disable"} ${r.name}`,
      onclick: () => act(async () => {
        await api(`/api/v1/robots/${r.id}`, { method: "PUT", body: { disabled: !r.disabled } });
        reload();
      }) }, r.disabled ? "Enable" : "Disable");
    const rotate = h("button", { type: "button", class: "small", "aria-label": `Rotate the secret of ${r.name}`,
      onclick: () => act(async () => {
        if (!(await confirmDialog(`Rotate the secret of ${r.name}? The current secret, and every token made with it, ` +
          "stop working at once.", "Rotate secret"))) return;
        const robot = await api(`/api/v1/robots/${r.id}/secret`, { method: "POST" });
        shownOnce = { name: robot.name, secret: robot.secret };
        reload();
      }) }, "Rotate secret");
    const remove = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${r.name}`,
      onclick: () => act(async () => {
        if (!(await confirmDialog(`Delete ${r.name}? CI jobs using it can no longer log in.`, `Delete ${r.name}`))) return;
        await api(`/api/v1/robots/${r.id}`, { method: "DELETE" });
        reload();
      }) }, "Delete");
    return h("tr", { dataset: { name: r.name, state: state(r) } },
      h("td", { class: "name" }, h("code", {}, r.name), r.description ? h("div", { class: "muted" }, r.description) : null),
      h("td", { class: "wrap grants" }, grantsText(r.grants)),
      h("td", { class: "state" }, state(r)),
      h("td", { class: "expires" }, r.expires_at ? timeEl(r.expires_at) : "never"),
      h("td", { class: "last-use" }, r.last_used_at ? [timeEl(r.last_used_at), " ", h("span", { class: "muted" },
        r.last_used_addr || "")] : "never used"),
      h("td", {}, r.created_by || ""),
      h("td", {}, toggle, " ", rotate, " ", remove, err));
  });
  main.append(table(["Name", "Grants", "State", "Expires", "Last use", "Created by", ""], rows,
    { className: "robots", empty: "No robot accounts yet." }), form);
}
