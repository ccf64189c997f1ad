// Quotas (admin): each quota with a usage bar, add one, delete one; the API's error is shown inline.
import { api, confirmDialog, errorBox, formatSize, h, table } from "../lib.js";

function usageBar(q) {
  const share = q.max_bytes ? Math.min(1, q.used_bytes / q.max_bytes) : 0;
  return h("span", { class: "quota-usage" },
    h("progress", { max: 1000, value: Math.round(share * 1000), "aria-label": `Usage of ${q.repositories}` }), " ",
    h("span", { class: "bytes" }, `${formatSize(q.used_bytes)} of ${formatSize(q.max_bytes)} (${Math.round(share * 100)}%)`));
}

export async function render(main, { navigate }) {
  main.append(h("h1", { tabindex: "-1" }, "Quotas"));
  const reload = () => navigate("quotas", {}, { replace: true });

  const createError = h("p", { class: "error", role: "alert", id: "create-quota-error", hidden: true });
  const repositories = h("input", { id: "new-quota-repositories", name: "repositories", autocomplete: "off", required: true,
    placeholder: "team-a/* or maven:releases" });
  const maxBytes = h("input", { id: "new-quota-max-bytes", name: "max_bytes", type: "number", min: "1", required: true });
  const maxTags = h("input", { id: "new-quota-max-tags", name: "max_tags", type: "number", min: "1", placeholder: "no limit" });
  const form = h("form", { class: "card inline-form", id: "create-quota" },
    h("h2", {}, "New quota"),
    h("label", { for: "new-quota-repositories" }, "Repositories"), repositories,
    h("label", { for: "new-quota-max-bytes" }, "Max bytes"), maxBytes,
    h("label", { for: "new-quota-max-tags" }, "Max tags"), maxTags,
    h("button", { type: "submit" }, "Add"), createError);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    createError.hidden = true;
    const body = { repositories: repositories.value.trim(), max_bytes: Number(maxBytes.value) };
    if (maxTags.value) body.max_tags = Number(maxTags.value);
    try {
      await api("/api/v1/quotas", { method: "POST", body });
      reload();
    } catch (err) {
      createError.textContent = err.message;
      createError.hidden = false;
    }
  });

  let listed;
  try { listed = await api("/api/v1/quotas"); } catch (e) { main.append(errorBox(e)); return; }
  const rows = listed.quotas.map(q => {
    const err = h("p", { class: "error", role: "alert", hidden: true });
    return h("tr", { dataset: { repositories: q.repositories } },
      h("td", {}, q.id), h("td", { class: "repositories" }, h("code", {}, q.repositories)),
      h("td", {}, usageBar(q)),
      h("td", { class: "tags" }, q.used_tags === null ? "—" : `${q.used_tags}${q.max_tags ? " of " + q.max_tags : ""}`),
      h("td", {}, h("button", { type: "button", class: "danger small", "aria-label": `Delete quota ${q.repositories}`, onclick: async () => {
        err.hidden = true;
        if (!(await confirmDialog(`Delete the quota on ${q.repositories}? Its repositories may then grow without limit.`,
          "Delete quota"))) return;
        try { await api(`/api/v1/quotas/${q.id}`, { method: "DELETE" }); reload(); }
        catch (e) { err.textContent = e.message; err.hidden = false; }
      } }, "Delete"), err));
  });
  main.append(
    rows.length ? table(["Id", "Repositories", "Usage", "Tags", ""], rows, { className: "quotas" })
      : h("p", { class: "muted", id: "no-quotas" }, "No quota yet."),
    form);
}
