// Policies (admin): tag retention rules and immutable-tag rules of hosted images — list, add, delete —
// and a retention dry run (what a run would delete), all through /api/v1/retention and /api/v1/immutable-tags.
import { api, confirmDialog, errorBox, h, table, timeEl } from "../lib.js";

function errorLine(id) {
  return h("p", { class: "error", role: "alert", id, hidden: true });
}

function field(id, label, attrs = {}) {
  const input = h("input", { id, name: id, autocomplete: "off", ...attrs });
  return [h("label", { for: id }, label), input];
}

function orNull(text) {
  const t = text.trim();
  return t === "" ? null : Number(t);
}

function showRun(box, result) {
  box.hidden = false;
  box.replaceChildren(h("h2", {}, result.dry_run ? "Dry run: tags that would be deleted" : `Deleted ${result.deleted} tags`));
  if (!result.tags.length) { box.append(h("p", { class: "muted", id: "dry-run-empty" }, "No tag would be deleted.")); return; }
  box.append(table(["Repository", "Tag", "Digest", "Pushed"], result.tags.map(t =>
    h("tr", { class: "doomed", dataset: { tag: `${t.repository}:${t.tag}` } }, h("td", {}, t.repository), h("td", {}, t.tag),
      h("td", { class: "wrap" }, h("code", {}, t.digest)), h("td", {}, timeEl(t.pushed_at)))), { className: "dry-run" }));
}

export async function render(main, { navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Policies"));
  const reload = () => navigate("policies", {}, { replace: true });
  let retention, immutable;
  try {
    [retention, immutable] = await Promise.all([api("/api/v1/retention"), api("/api/v1/immutable-tags")]);
  } catch (e) { main.append(errorBox(e)); return; }
  const runBox = h("section", { class: "card", id: "retention-run", "aria-live": "polite", hidden: true });

  // -- retention rules
  const retError = errorLine("retention-error");
  const retRows = retention.rules.map(r => {
    const err = h("p", { class: "error", role: "alert", hidden: true });
    const keep = [r.keep_last !== null ? `last ${r.keep_last}` : null, r.keep_days !== null ? `${r.keep_days} days` : null,
      r.keep_tags.length ? `tags ${r.keep_tags.join(", ")}` : null].filter(Boolean).join(" · ");
    return h("tr", { class: "retention-rule", dataset: { id: r.id } }, h("td", {}, r.id), h("td", {}, h("code", {}, r.repositories)),
      h("td", {}, keep), h("td", {}, timeEl(r.updated_at)),
      h("td", {},
        h("button", { type: "button", class: "small", "aria-label": `Dry run of retention rule ${r.id}`, onclick: async () => {
          err.hidden = true;
          try { showRun(runBox, await api(`/api/v1/retention/${r.id}/run`, { method: "POST", body: { dry_run: true } })); }
          catch (e) { err.textContent = e.message; err.hidden = false; }
        } }, "Dry run"),
        h("button", { type: "button", class: "danger small", "aria-label": `Delete retention rule ${r.id}`, onclick: async () => {
          err.hidden = true;
          if (!(await confirmDialog(`Delete retention rule ${r.id} on ${r.repositories}? Its tags are no longer pruned.`,
            "Delete rule"))) return;
          try { await api(`/api/v1/retention/${r.id}`, { method: "DELETE" }); reload(); }
          catch (e) { err.textContent = e.message; err.hidden = false; }
        } }, "Delete"), err));
  });
  const [repLabel, rep] = field("retention-repositories", "Repositories (glob)", { placeholder: "team-a/*", required: true });
  const [lastLabel, last] = field("retention-keep-last", "Keep last", { type: "number", min: "0" });
  const [daysLabel, days] = field("retention-keep-days", "Keep days", { type: "number", min: "0" });
  const [tagsLabel, tags] = field("retention-keep-tags", "Keep tags (globs, comma-separated)", { placeholder: "v*, latest" });
  const retForm = h("form", { class: "card inline-form", id: "add-retention" }, h("h2", {}, "New retention rule"),
    repLabel, rep, lastLabel, last, daysLabel, days, tagsLabel, tags, h("button", { type: "submit" }, "Add"), retError);
  retForm.addEventListener("submit", async e => {
    e.preventDefault();
    retError.hidden = true;
    const keepTags = tags.value.split(",").map(s => s.trim()).filter(Boolean);
    try {
      await api("/api/v1/retention", { method: "POST", body: {
        repositories: rep.value, keep_last: orNull(last.value), keep_days: orNull(days.value), keep_tags: keepTags } });
      reload();
    } catch (err) { retError.textContent = err.message; retError.hidden = false; }
  });
  const runAll = h("button", { type: "button", id: "retention-dry-run-all", onclick: async () => {
    try { showRun(runBox, await api("/api/v1/retention/run", { method: "POST", body: { dry_run: true } })); }
    catch (e) { runBox.hidden = false; runBox.replaceChildren(errorBox(e)); }
  } }, "Dry run of all rules");

  // -- immutable-tag rules
  const immError = errorLine("immutable-error");
  const immRows = immutable.rules.map(r => {
    const err = h("p", { class: "error", role: "alert", hidden: true });
    return h("tr", { class: "immutable-rule", dataset: { id: r.id } }, h("td", {}, r.id), h("td", {}, h("code", {}, r.repositories)),
      h("td", {}, h("code", {}, r.tags)), h("td", {}, timeEl(r.created_at)),
      h("td", {}, h("button", { type: "button", class: "danger small", "aria-label": `Delete immutable-tag rule ${r.id}`, onclick: async () => {
        err.hidden = true;
        if (!(await confirmDialog(`Delete immutable-tag rule ${r.id} (${r.repositories}: ${r.tags})? Those tags can then be overwritten.`,
          "Delete rule"))) return;
        try { await api(`/api/v1/immutable-tags/${r.id}`, { method: "DELETE" }); reload(); }
        catch (e) { err.textContent = e.message; err.hidden = false; }
      } }, "Delete"), err));
  });
  const [irLabel, ir] = field("immutable-repositories", "Repositories (glob)", { placeholder: "team-a/*", required: true });
  const [itLabel, it] = field("immutable-tags", "Tags (glob)", { placeholder: "v*", required: true });
  const immForm = h("form", { class: "card inline-form", id: "add-immutable" }, h("h2", {}, "New immutable-tag rule"),
    irLabel, ir, itLabel, it, h("button", { type: "submit" }, "Add"), immError);
  immForm.addEventListener("submit", async e => {
    e.preventDefault();
    immError.hidden = true;
    try { await api("/api/v1/immutable-tags", { method: "POST", body: { repositories: ir.value, tags: it.value } }); reload(); }
    catch (err) { immError.textContent = err.message; immError.hidden = false; }
  });

  main.append(
    h("h2", {}, "Tag retention"),
    h("p", { class: "muted" }, "A pushed tag survives when any clause of a rule covering its repository keeps it; the rest are deleted on schedule."),
    retRows.length ? table(["Id", "Repositories", "Keeps", "Changed", ""], retRows, { className: "retention" })
      : h("p", { class: "muted", id: "no-retention" }, "No retention rule."),
    runAll, retForm, runBox,
    h("h2", {}, "Immutable tags"),
    h("p", { class: "muted" }, "A matching pushed tag can no longer be moved to another image or deleted."),
    immRows.length ? table(["Id", "Repositories", "Tags", "Created", ""], immRows, { className: "immutable" })
      : h("p", { class: "muted", id: "no-immutable" }, "No immutable-tag rule."),
    immForm);
}
