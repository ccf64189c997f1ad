"""Console login through OpenID Connect, the login methods, and CLI secrets (``[auth.oidc]``).

Routes on `ApiFront`'s Klein app (importing this module adds them; service.py
does and calls `attach`):

- ``GET /api/v1/auth/methods`` (public): whether the console offers
  "Log in with <display_name>";
- ``GET /api/v1/auth/oidc/login``: 302 to the provider with a signed state
  cookie (`core.identity.oidc_state`);
- ``GET /api/v1/auth/oidc/callback``: finishes the login and sends the
  browser to ``/ui/#/oidc?token=<management token>`` (a fragment: never sent
  to a server, in no Referer; the console stores it and replaces the
  address), or to ``/ui/#/login?oidc_error=<reason>``.  Audited as
  ``login.oidc`` / ``login.failed`` (with the reason, never a code or token);
- ``GET``/``POST /api/v1/users/me/cli-secret``: whether the caller has a CLI
  secret / a new one, shown once (`core.identity.cli_secret`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from harbor_cache.api.front import ANY_USER, ApiFront, requires
from harbor_cache.auth import credential_stamp
from harbor_cache.core.identity.cli_secret import CliSecrets, has_cli_secret
from harbor_cache.core.identity.oidc import OidcLogin, OidcLoginError
from harbor_cache.core.identity.oidc_state import COOKIE_NAME, STATE_LIFETIME_SECONDS
from harbor_cache.errors import NotFound
from harbor_cache.grammar.public_url import PublicURL
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.responses import json_response

app = ApiFront.app

CALLBACK_PATH = "/api/v1/auth/oidc/callback"
COOKIE_PATH = b"/api/v1/auth/oidc"
MAX_ARG_CHARS = 4096
CONSOLE = "/ui/"


def attach(front: ApiFront, login: OidcLogin | None, secrets: CliSecrets, public_url: PublicURL | str | None) -> None:
    """Give the management front the OIDC login (None: off), the CLI secrets and the public URL (service wires it)."""
    front.oidc = login  # type: ignore[attr-defined]
    front.cli_secrets = secrets  # type: ignore[attr-defined]
    front.oidc_public_url = PublicURL.of(public_url)  # type: ignore[attr-defined]


def _login(front: Any) -> OidcLogin:
    login = getattr(front, "oidc", None)
    if login is None:
        raise NotFound("OpenID Connect login is not configured ([auth.oidc])")
    return login


def _arg(request: HarborRequest, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values or len(values[0]) > MAX_ARG_CHARS:
        return None
    try:
        text = values[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _redirect(request: HarborRequest, location: str) -> bytes:
    request.setResponseCode(302)
    request.setHeader(b"Location", location.encode("ascii"))
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    return b""


def _callback_url(front: Any, request: HarborRequest) -> str:
    configured = _login(front).config.redirect_url
    return configured or front.oidc_public_url.for_request(request) + CALLBACK_PATH


def _set_state_cookie(request: HarborRequest, value: str, max_age: int) -> None:
    request.addCookie(
        COOKIE_NAME.encode(),
        value.encode("ascii"),
        path=COOKIE_PATH,
        max_age=str(max_age).encode(),
        httpOnly=True,
        secure=request.isSecure() or (request.getHeader(b"X-Forwarded-Proto") or b"").lower() == b"https",
        sameSite="lax",
    )


async def _failed(front: ApiFront, request: HarborRequest, reason: str, username: str | None = None) -> bytes:
    await front.record(request, "login.failed", username, detail={"source": "oidc", "reason": reason})
    _set_state_cookie(request, "", 0)
    return _redirect(request, CONSOLE + "#/login?oidc_error=" + quote(reason, safe=""))


@app.route("/api/v1/auth/methods", methods=["GET"])
async def auth_methods(self: ApiFront, request: HarborRequest) -> bytes:
    login = getattr(self, "oidc", None)
    oidc = None
    if login is not None:
        oidc = {"display_name": login.config.display_name, "login_url": "/api/v1/auth/oidc/login"}
    return json_response(request, {"password": True, "oidc": oidc})


@app.route("/api/v1/auth/oidc/login", methods=["GET"])
async def oidc_login(self: ApiFront, request: HarborRequest) -> bytes:
    login = _login(self)
    try:
        url, cookie = await login.begin(_callback_url(self, request))
    except OidcLoginError as e:
        return await _failed(self, request, e.reason)
    _set_state_cookie(request, cookie, STATE_LIFETIME_SECONDS)
    return _redirect(request, url)


@app.route("/api/v1/auth/oidc/callback", methods=["GET"])
async def oidc_callback(self: ApiFront, request: HarborRequest) -> bytes:
    login = _login(self)
    error = _arg(request, "error")
    if error is not None:
        shown = error if error.isascii() and len(error) <= 64 else "error"
        return await _failed(self, request, f"the provider refused the login ({shown})")
    cookie = request.getCookie(COOKIE_NAME.encode())
    try:
        outcome = await login.finish(
            _arg(request, "code"), _arg(request, "state"), cookie.decode("latin-1") if cookie else None
        )
    except OidcLoginError as e:
        return await _failed(self, request, e.reason, e.username)
    user = outcome.user
    await self.record(
        request, "login.oidc", user.username, detail={"created": outcome.created, "groups": outcome.groups}
    )
    _set_state_cookie(request, "", 0)
    token = self.tokens.mint(user.id, user.username, user.role, stamp=credential_stamp(user.password_hash))
    return _redirect(request, CONSOLE + "#/oidc?token=" + token)


@app.route("/api/v1/users/me/cli-secret", methods=["GET"])
@requires(ANY_USER)
async def cli_secret_status(self: ApiFront, request: HarborRequest, caller: Any) -> bytes:
    return json_response(
        request,
        {"username": caller.username, "available": caller.source == "oidc", "has_secret": has_cli_secret(caller)},
    )


@app.route("/api/v1/users/me/cli-secret", methods=["POST"])
@requires(ANY_USER)
async def cli_secret_generate(self: ApiFront, request: HarborRequest, caller: Any) -> bytes:
    secrets: CliSecrets = self.cli_secrets  # type: ignore[attr-defined]
    secret, row = await secrets.generate(caller)
    await self.record(request, "user.cli_secret", caller.username, target=caller.username)
    # the console's token carries a stamp of the old hash: hand it a new one so the session goes on
    token = self.tokens.mint(row.id, row.username, row.role, stamp=credential_stamp(row.password_hash))
    request.setHeader(b"Cache-Control", b"no-store")
    return json_response(
        request, {"username": row.username, "secret": secret, "token": token, "expires_in": self.tokens.lifetime}
    )
