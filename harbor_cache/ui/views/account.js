// The signed-in user's own account. Users who log in through OpenID Connect have no password here:
// docker, skopeo and Maven take a CLI secret instead (POST /api/v1/users/me/cli-secret), shown once.
import { api, errorBox, h, session } from "../lib.js";

export async function render(main) {
  main.append(h("h1", { tabindex: "-1" }, "Account"));
  main.append(h("p", {}, "Signed in as ", h("strong", { id: "account-username" }, session.user?.username || ""),
    " (", session.user?.role || "", ")."));
  let status;
  try { status = await api("/api/v1/users/me/cli-secret"); } catch (e) { main.append(errorBox(e)); return; }
  if (!status.available) return;
  const state = h("p", { id: "cli-secret-state" });
  const shown = h("div", { id: "cli-secret-shown", hidden: true });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const button = h("button", { type: "button", id: "cli-secret-generate" });
  const describe = has => {
    state.textContent = has ? "You have a CLI secret. A new one replaces it at once." : "You have no CLI secret yet.";
    button.textContent = has ? "Regenerate CLI secret" : "Generate CLI secret";
  };
  describe(status.has_secret);
  button.addEventListener("click", async () => {
    error.hidden = true;
    button.disabled = true;
    try {
      const answer = await api("/api/v1/users/me/cli-secret", { method: "POST" });
      session.start(answer.token);  // the old token was bound to the old secret
      shown.replaceChildren(
        h("p", {}, "Your new CLI secret (shown only now; copy it):"),
        h("p", {}, h("code", { id: "cli-secret-value" }, answer.secret)),
        h("p", {}, "Use it as the password: ", h("code", {}, `docker login -u ${answer.username} ${location.host}`)));
      shown.hidden = false;
      describe(true);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  main.append(h("section", { class: "card", id: "cli-secret" },
    h("h2", {}, "CLI secret"),
    h("p", {}, "You log in to this console through your identity provider and have no password here. ",
      "Registry and Maven clients (docker, podman, skopeo, mvn) use your username and a CLI secret instead."),
    state, h("div", { class: "actions" }, button), shown, error));
}
