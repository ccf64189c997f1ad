// Runtime configuration (admin): every key with type, description, default and current value;
// an invalid value shows the API's error inline; reset to default.
import { api, errorBox, h, sizeEl, table, timeEl } from "../lib.js";

function editor(key) {
  const id = "cfg-" + key.key.replace(/[^a-z0-9]/gi, "-");
  if (key.type === "boolean" || key.enum) {
    const choices = key.enum || ["true", "false"];
    return h("select", { id, "aria-label": key.key }, choices.map(c => h("option", { value: c, selected: c === key.value }, c)));
  }
  const input = h("input", { id, "aria-label": key.key, inputmode: key.type === "integer" ? "numeric" : undefined, size: 14 });
  input.value = key.value;
  return input;
}

// A byte count (cache.max_size, ...): its default also shown in KB/MB/GB, the exact count on hover.
const isByteCount = key => key.type === "integer" && /(size|bytes)$/.test(key.key);

function bounds(key) {
  const parts = [];
  if (key.minimum !== undefined) parts.push(`≥ ${key.minimum}`);
  if (key.maximum !== undefined) parts.push(`≤ ${key.maximum}`);
  if (key.enum) parts.push(key.enum.join(" | "));
  return parts.join(", ");
}

export async function render(main, { navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Configuration"));
  main.append(h("p", { class: "muted" }, "Changes apply at once, without a restart."));
  let schema;
  // exact: bounds such as cache.max_size's 2^60 stay exact (JSON numbers past 2^53 would round)
  try { schema = await api("/api/v1/config/schema", { exact: true }); } catch (e) { main.append(errorBox(e)); return; }
  const rows = schema.keys.map(key => {
    const input = editor(key);
    const err = h("p", { class: "error", role: "alert", hidden: true });
    const status = h("span", { role: "status" });
    const save = h("button", { type: "button", class: "small", onclick: async () => {
      err.hidden = true;
      try {
        await api("/api/v1/config", { method: "PUT", body: { entries: [{ key: key.key, value: input.value }] } });
        status.textContent = "Saved.";
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
      }
    } }, "Save");
    const reset = h("button", { type: "button", class: "small", disabled: key.updated_at === null, onclick: async () => {
      try { await api(`/api/v1/config/${encodeURIComponent(key.key)}`, { method: "DELETE" }); navigate("config", {}, { replace: true }); }
      catch (e) { err.textContent = e.message; err.hidden = false; }
    } }, "Reset to default");
    return h("tr", { dataset: { key: key.key } },
      h("th", { scope: "row" }, h("code", {}, key.key), h("div", { class: "muted" }, key.description)),
      h("td", {}, key.type, bounds(key) ? h("div", { class: "muted bounds" }, bounds(key)) : null),
      h("td", {}, h("code", { class: "raw-number" }, key.default),
        isByteCount(key) && /^\d+$/.test(key.default) ? h("div", { class: "muted" }, sizeEl(key.default)) : null),
      h("td", {}, input, " ", save, " ", reset, " ", status, err,
        h("div", { class: "muted" }, key.updated_at ? ["changed ", timeEl(key.updated_at)] : "default")));
  });
  main.append(table(["Key", "Type", "Default", "Value"], rows, { className: "config", empty: "No runtime settings." }));
}
