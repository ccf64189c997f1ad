// The add / edit form of an OCI upstream (views/upstreams.js opens it), built on the management API:
// POST /api/v1/upstreams, PUT /api/v1/upstreams/{id}, POST /api/v1/upstreams/test.
// A 400 names its field (detail.field): the message is shown next to that field and the field is focused.
// Credentials are write-only: never shown; on edit an empty field keeps what is stored. The server drops stored
// credentials when the URL moves to another origin (scheme, host, port) unless they are given again: the form says so.
import { api, ApiError, errorBox, h } from "../lib.js";

const FIELDS = [
  // [field, label, input attributes, help]
  ["name", "Name", { required: true, maxlength: 64 }, "Unique; used in metrics and logs"],
  ["url", "URL", { required: true, type: "url", placeholder: "https://registry-1.docker.io" }, "http:// or https:// base URL"],
  ["registry", "Registry host", { placeholder: "docker.io" }, "Matched against containerd's ns= (optional)"],
  ["prefix", "Path prefix", { placeholder: "quay" }, "Images under /v2/<prefix>/… go here (optional)"],
  ["routes", "Routes", { placeholder: "library/*, team/*" }, "Globs of the default namespace, comma separated"],
  ["priority", "Priority", { type: "number", step: 1 }, "Lower is tried first"],
];

function body(inputs, editing) {
  const out = {};
  const text = k => inputs[k].value.trim();
  out.name = text("name");
  out.url = text("url");
  out.registry = text("registry") || null;
  out.prefix = text("prefix") || null;
  out.routes = text("routes") ? text("routes").split(",").map(s => s.trim()).filter(Boolean) : [];
  if (text("priority") !== "") out.priority = Number(text("priority"));
  out.allow_push = inputs.allow_push.checked;
  if (inputs.clear && inputs.clear.checked) { out.username = null; out.password = null; }
  else {
    if (text("username") || !editing) out.username = text("username") || null;
    if (inputs.password.value || !editing) out.password = inputs.password.value || null;
  }
  return out;
}

// Show a 400 next to its field; anything else above the buttons. Returns true when it went to a field.
function showError(e, form, inputs, general) {
  const field = e instanceof ApiError && e.status === 400 && e.detail && e.detail.field;
  const target = field && form.querySelector(`#uf-${field}-error`);
  if (target) {
    target.textContent = e.message;
    inputs[field].setAttribute("aria-invalid", "true");
    inputs[field].focus();
    return true;
  }
  general.replaceChildren(errorBox(e));
  return false;
}

export function upstreamForm(upstream, { onSaved, onCancel }) {
  const editing = !!upstream;
  const inputs = {};
  const rows = FIELDS.map(([k, label, attrs, help]) => {
    const value = !upstream ? (k === "priority" ? "0" : "")
      : k === "routes" ? (upstream.routes || []).join(", ") : (upstream[k] ?? "");
    inputs[k] = h("input", { id: "uf-" + k, name: k, value, "aria-describedby": `uf-${k}-help uf-${k}-error`, ...attrs });
    return h("div", { class: "field" }, h("label", { for: "uf-" + k }, label), inputs[k],
      h("small", { id: `uf-${k}-help`, class: "muted" }, help),
      h("span", { id: `uf-${k}-error`, class: "field-error error", role: "alert" }));
  });
  inputs.allow_push = h("input", { id: "uf-allow_push", type: "checkbox", checked: !!upstream?.allow_push });
  const keep = editing ? "leave empty to keep the stored one" : "optional";
  inputs.username = h("input", { id: "uf-username", name: "username", autocomplete: "off",
    placeholder: editing && upstream.has_credentials ? "(stored: leave empty to keep)" : "", "aria-describedby": "uf-credentials-help uf-username-error" });
  inputs.password = h("input", { id: "uf-password", name: "password", type: "password", autocomplete: "new-password",
    placeholder: editing && upstream.has_credentials ? "(stored: leave empty to keep)" : "", "aria-describedby": "uf-credentials-help uf-password-error" });
  const credentials = h("fieldset", { class: "credentials" }, h("legend", {}, "Credentials (write-only: never shown)"),
    h("div", { class: "field" }, h("label", { for: "uf-username" }, "Username"), inputs.username,
      h("span", { id: "uf-username-error", class: "field-error error", role: "alert" })),
    h("div", { class: "field" }, h("label", { for: "uf-password" }, "Password or token"), inputs.password,
      h("span", { id: "uf-password-error", class: "field-error error", role: "alert" })),
    h("p", { id: "uf-credentials-help", class: "muted" }, editing
      ? [`Stored credentials: ${upstream.has_credentials ? "yes" : "none"} — ${keep}. `,
        "Changing the URL to another scheme, host or port drops the stored credentials unless you enter them again."]
      : "Optional: for registries that need a login."));
  if (editing && upstream.has_credentials) {
    inputs.clear = h("input", { id: "uf-clear", type: "checkbox" });
    credentials.append(h("span", { class: "check" }, inputs.clear, h("label", { for: "uf-clear" }, "Remove the stored credentials")));
  }
  const general = h("div", { id: "uf-general" });
  const result = h("p", { id: "uf-test-result", role: "status" });
  const save = h("button", { type: "submit", id: "uf-save" }, editing ? "Save changes" : "Add upstream");
  const test = h("button", { type: "button", id: "uf-test" }, "Test");
  const cancel = h("button", { type: "button", id: "uf-cancel", onclick: onCancel }, "Cancel");
  const form = h("form", { class: "card upstream-form", id: "upstream-form", novalidate: true },
    h("h2", {}, editing ? `Edit upstream ${upstream.name}` : "Add an OCI upstream"),
    rows, h("div", { class: "field" }, h("span", { class: "check" }, inputs.allow_push,
      h("label", { for: "uf-allow_push" }, "Allow pushes into this proxy namespace"))),
    credentials, general, h("div", { class: "actions" }, save, test, cancel), result);
  const reset = () => {
    general.replaceChildren();
    result.textContent = "";
    for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
  };
  form.addEventListener("submit", async e => {
    e.preventDefault();
    reset();
    save.disabled = true;
    try {
      const saved = editing
        ? await api(`/api/v1/upstreams/${upstream.id}`, { method: "PUT", body: body(inputs, true) })
        : await api("/api/v1/upstreams", { method: "POST", body: body(inputs, false) });
      onSaved(saved);
    } catch (err) {
      showError(err, form, inputs, general);
    } finally {
      save.disabled = false;
    }
  });
  test.addEventListener("click", async () => {
    reset();
    result.textContent = "Testing…";
    try {
      const probe = { ...body(inputs, editing), ...(editing ? { id: upstream.id } : {}) };
      const r = await api("/api/v1/upstreams/test", { method: "POST", body: probe });
      result.className = r.reachable && r.authenticated !== false ? "ok" : "error";
      result.textContent = !r.reachable ? `Not reachable: ${r.error || "no answer"}`
        : `Reachable (GET /v2/ answered ${r.status}); authentication: `
          + (r.authenticated === null ? "could not be told" : r.authenticated ? "accepted" : "refused")
          + (r.error ? ` — ${r.error}` : "");
    } catch (err) {
      result.textContent = "";
      showError(err, form, inputs, general);
    }
  });
  return form;
}
