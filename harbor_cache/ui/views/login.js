// Log in with POST /api/v1/auth/login; the token goes to sessionStorage only.
// The same credentials mint a read-only Kagami token (POST /token) so private
// Maven repositories can be browsed in this tab.
import { api, ApiError, h, session } from "../lib.js";

async function artifactToken(username, password) {
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(username + ":" + password)));
  try {
    const response = await fetch("/token", {
      method: "POST", credentials: "omit",
      headers: { Authorization: "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded" },
      body: "scope=artifacts:read",
    });
    return response.ok ? (await response.text()).trim() : null;
  } catch {
    return null;
  }
}

// "Log in with <provider>" when [auth.oidc] is configured: a plain link, the server redirects to the provider.
async function oidcButton(form) {
  let methods;
  try { methods = await api("/api/v1/auth/methods", { auth: "none" }); } catch { return; }
  if (!methods?.oidc) return;
  form.append(h("div", { class: "actions oidc-login" },
    h("a", { id: "login-oidc", class: "button", href: methods.oidc.login_url }, "Log in with " + methods.oidc.display_name)));
}

export async function render(main, { navigate, params }) {
  document.title = "Log in · harbor-cache";
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const username = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", name: "password", type: "password",
    autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", id: "login-submit" }, "Log in");
  const form = h("form", { class: "card narrow", id: "login-form" },
    h("label", { for: "login-username" }, "Username"), username,
    h("label", { for: "login-password" }, "Password"), password,
    h("div", { class: "actions" }, submit), error);
  main.append(h("h1", { tabindex: "-1" }, "Log in"));
  if (params.get("expired")) main.append(h("p", { class: "notice" }, "Your session ended. Log in again."));
  main.append(form);
  const oidcError = params.get("oidc_error");
  if (oidcError) {  // the provider login (GET /api/v1/auth/oidc/callback) failed: the server's reason, as text
    error.textContent = "Login through the identity provider failed: " + oidcError;
    error.hidden = false;
  }
  username.focus();
  oidcButton(form);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const answer = await api("/api/v1/auth/login", { method: "POST", auth: "none",
        body: { username: username.value, password: password.value } });
      session.start(answer.token, await artifactToken(username.value, password.value));
      await session.loadPermissions();
      password.value = "";
      const next = params.get("next");
      if (next && next.startsWith("#/") && !next.startsWith("#/login")) location.hash = next;
      else navigate("dashboard");
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401 ? "Wrong username or password." : e.message;
      error.hidden = false;
      submit.disabled = false;
      password.focus();
    }
  });
}
