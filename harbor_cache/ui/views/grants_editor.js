// A small editor for a list of grants (users and groups): rows of a pattern and action checkboxes, add and remove
// rows.  The server checks the grants (a bad pattern or an empty action list is its 400, shown by the caller).
import { h } from "../lib.js";

export const ACTIONS = ["pull", "push", "delete", "admin"];

// "team-a/*: pull, push; maven:releases: admin" ("none" when empty).
export function grantsSummary(grants) {
  if (!grants || !grants.length) return "none";
  return grants.map(g => `${g.repositories}: ${g.actions.join(", ")}`).join("; ");
}

// { element, value() }: ``prefix`` makes the ids unique on the page; value() is the list the API takes.
export function grantsEditor(grants, prefix, label) {
  let n = 0;
  const rows = h("div", { class: "grant-rows" });
  const addRow = grant => {
    const i = n++;
    const pattern = h("input", { id: `${prefix}-pattern-${i}`, class: "grant-pattern", autocomplete: "off",
      value: grant?.repositories || "", placeholder: "team-a/* or maven:releases/com/example",
      "aria-label": `Repositories of grant ${i + 1}${label ? " of " + label : ""}` });
    const boxes = ACTIONS.map(a => h("label", { class: "grant-action" },
      h("input", { type: "checkbox", name: a, value: a, checked: !!grant?.actions?.includes(a) }), " ", a));
    const row = h("div", { class: "grant-row" }, pattern, ...boxes,
      h("button", { type: "button", class: "small", "aria-label": `Remove grant ${i + 1}`,
        onclick: () => row.remove() }, "Remove"));
    rows.append(row);
  };
  for (const g of grants || []) addRow(g);
  const element = h("fieldset", { class: "grants-editor", id: prefix },
    h("legend", {}, "Grants"), rows,
    h("button", { type: "button", class: "small add-grant", onclick: () => addRow(null) }, "Add grant"));
  const value = () => [...rows.querySelectorAll(".grant-row")]
    .map(r => ({
      repositories: r.querySelector(".grant-pattern").value.trim(),
      actions: [...r.querySelectorAll("input[type=checkbox]:checked")].map(c => c.value),
    }))
    .filter(g => g.repositories || g.actions.length);
  return { element, value };
}
