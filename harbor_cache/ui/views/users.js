// Users (admin): list, create, change role, password or grants, delete; the API's error is shown inline.
import { api, confirmDialog, errorBox, h, session, table, timeEl } from "../lib.js";
import { grantsEditor, grantsSummary } from "./grants_editor.js";

const ROLES = ["admin", "read-write", "read-only"];

function roleSelect(id, value) {
  return h("select", { id, name: "role" }, ROLES.map(r => h("option", { value: r, selected: r === value }, r)));
}

// The user's own grants (on top of the role's) and, folded, an editor to change them.
function grantsCell(u, show, reload) {
  const editor = grantsEditor(u.grants, `grants-${u.id}`, u.username);
  const save = h("button", { type: "button", class: "small save-grants", onclick: async () => {
    try { await api(`/api/v1/users/${u.id}`, { method: "PUT", body: { grants: editor.value() } }); reload(); } catch (e) { show(e); }
  } }, "Save grants");
  return h("td", { class: "grants" }, h("details", {},
    h("summary", { "aria-label": `Grants of ${u.username}` }, h("span", { class: "grants-summary" }, grantsSummary(u.grants))),
    editor.element, save));
}

export async function render(main, { navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Users"));
  const reload = () => navigate("users", {}, { replace: true });

  const createError = h("p", { class: "error", role: "alert", id: "create-user-error", hidden: true });
  const username = h("input", { id: "new-username", name: "username", autocomplete: "off", required: true });
  const password = h("input", { id: "new-password", name: "password", type: "password", autocomplete: "new-password", required: true });
  const role = roleSelect("new-role", "read-only");
  // Grants on top of the role, given at creation (left out of the request when none, as the API allows).
  const newGrants = grantsEditor([], "new-user-grants", "the new user");
  const form = h("form", { class: "card inline-form", id: "create-user" },
    h("h2", {}, "New user"),
    h("label", { for: "new-username" }, "Username"), username,
    h("label", { for: "new-password" }, "Password"), password,
    h("label", { for: "new-role" }, "Role"), role,
    newGrants.element,
    h("button", { type: "submit" }, "Create"), createError);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    createError.hidden = true;
    const body = { username: username.value, password: password.value, role: role.value };
    const grants = newGrants.value();
    if (grants.length) body.grants = grants;
    try {
      await api("/api/v1/users", { method: "POST", body });
      reload();
    } catch (err) {
      createError.textContent = err.message;
      createError.hidden = false;
    }
  });

  let users;
  try { users = await api("/api/v1/users"); } catch (e) { main.append(errorBox(e)); return; }
  const rows = users.map(u => {
    const err = h("p", { class: "error", role: "alert", hidden: true });
    const show = e => { err.textContent = e.message; err.hidden = false; };
    const sel = roleSelect(`role-${u.id}`, u.role);
    const pw = h("input", { id: `pw-${u.id}`, type: "password", autocomplete: "new-password", placeholder: "new password",
      "aria-label": `New password for ${u.username}` });
    return h("tr", { dataset: { username: u.username } },
      h("td", {}, u.id), h("td", { class: "username" }, u.username, u.username === session.user?.username ? " (you)" : ""),
      h("td", {}, h("label", { for: `role-${u.id}`, class: "sr" }, `Role of ${u.username}`), sel,
        h("button", { type: "button", class: "small", onclick: async () => {
          err.hidden = true;
          try { await api(`/api/v1/users/${u.id}`, { method: "PUT", body: { role: sel.value } }); reload(); } catch (e) { show(e); }
        } }, "Save role")),
      grantsCell(u, show, reload),
      h("td", {}, pw, h("button", { type: "button", class: "small", onclick: async () => {
        err.hidden = true;
        try { await api(`/api/v1/users/${u.id}`, { method: "PUT", body: { password: pw.value } }); pw.value = ""; err.textContent = ""; }
        catch (e) { show(e); }
      } }, "Set password")),
      h("td", {}, timeEl(u.created_at)),
      h("td", {}, h("button", { type: "button", class: "danger small", "aria-label": `Delete user ${u.username}`, onclick: async () => {
        err.hidden = true;
        if (!(await confirmDialog(`Delete the user ${u.username} (${u.role})? They can no longer log in or pull.`,
          `Delete user ${u.username}`))) return;
        try { await api(`/api/v1/users/${u.id}`, { method: "DELETE" }); reload(); } catch (e) { show(e); }
      } }, "Delete"), err));
  });
  main.append(table(["Id", "Username", "Role", "Grants", "Password", "Created", ""], rows, { className: "users", empty: "No users yet." }), form);
}
