// Groups (admin): each group's role, grants and members; create, edit and delete; the API's error is shown inline.
// A member gets the union of their own grants and those of their groups (docs/security.md).
import { api, confirmDialog, errorBox, h, table } from "../lib.js";
import { grantsEditor, grantsSummary } from "./grants_editor.js";

const ROLES = ["admin", "read-write", "read-only"];

function roleSelect(id, value) {
  return h("select", { id, name: "role" },
    h("option", { value: "", selected: !value }, "(no role)"),
    ROLES.map(r => h("option", { value: r, selected: r === value }, r)));
}

// "alice, bob" -> ["alice", "bob"]
const memberList = text => text.split(/[\s,]+/).filter(Boolean);

// The fields of a group as inputs (``prefix`` keeps ids unique); body() is what POST / PUT take.
function groupFields(g, prefix) {
  const name = h("input", { id: `${prefix}-name`, name: "name", autocomplete: "off", required: true, value: g?.name || "" });
  const description = h("input", { id: `${prefix}-description`, name: "description", autocomplete: "off",
    value: g?.description || "" });
  const role = roleSelect(`${prefix}-role`, g?.role);
  const members = h("input", { id: `${prefix}-members`, name: "members", autocomplete: "off",
    value: (g?.members || []).join(", "), placeholder: "alice, bob" });
  const grants = grantsEditor(g?.grants || [], `${prefix}-grants`, g?.name);
  const element = [
    h("label", { for: `${prefix}-name` }, "Name"), name,
    h("label", { for: `${prefix}-description` }, "Description"), description,
    h("label", { for: `${prefix}-role` }, "Role"), role,
    h("label", { for: `${prefix}-members` }, "Members (usernames)"), members,
    grants.element,
  ];
  const body = () => ({ name: name.value.trim(), description: description.value, role: role.value || null,
    members: memberList(members.value), grants: grants.value() });
  return { element, body };
}

export async function render(main, { navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Groups"));
  const reload = () => navigate("groups", {}, { replace: true });

  const createError = h("p", { class: "error", role: "alert", id: "create-group-error", hidden: true });
  const fields = groupFields(null, "new-group");
  const form = h("form", { class: "card inline-form", id: "create-group" },
    h("h2", {}, "New group"), fields.element, h("button", { type: "submit" }, "Create"), createError);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    createError.hidden = true;
    try {
      await api("/api/v1/groups", { method: "POST", body: fields.body() });
      reload();
    } catch (err) {
      createError.textContent = err.message;
      createError.hidden = false;
    }
  });

  let listed;
  try { listed = await api("/api/v1/groups"); } catch (e) { main.append(errorBox(e)); return; }
  const rows = listed.groups.map(g => {
    const err = h("p", { class: "error", role: "alert", hidden: true });
    const show = e => { err.textContent = e.message; err.hidden = false; };
    const edit = groupFields(g, `group-${g.id}`);
    const editForm = h("form", { class: "inline-form edit-group" }, edit.element,
      h("button", { type: "submit", class: "small" }, "Save"));
    editForm.addEventListener("submit", async e => {
      e.preventDefault();
      err.hidden = true;
      try { await api(`/api/v1/groups/${g.id}`, { method: "PUT", body: edit.body() }); reload(); } catch (x) { show(x); }
    });
    return h("tr", { dataset: { name: g.name } },
      h("td", { class: "name" }, g.name, g.description ? h("div", { class: "muted" }, g.description) : null),
      h("td", { class: "role" }, g.role || "—"),
      h("td", { class: "grants" }, grantsSummary(g.grants)),
      h("td", { class: "members" }, g.members.join(", ") || "—"),
      h("td", {}, g.source),
      h("td", {},
        h("details", {}, h("summary", { "aria-label": `Edit group ${g.name}` }, "Edit"), editForm),
        h("button", { type: "button", class: "danger small", "aria-label": `Delete group ${g.name}`, onclick: async () => {
          err.hidden = true;
          if (!(await confirmDialog(`Delete the group ${g.name}? Its members lose what it grants them.`,
            `Delete group ${g.name}`))) return;
          try { await api(`/api/v1/groups/${g.id}`, { method: "DELETE" }); reload(); } catch (x) { show(x); }
        } }, "Delete"), err));
  });
  main.append(
    rows.length ? table(["Name", "Role", "Grants", "Members", "Source", ""], rows, { className: "groups" })
      : h("p", { class: "muted", id: "no-groups" }, "No group yet."),
    form);
}
