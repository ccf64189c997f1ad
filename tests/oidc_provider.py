"""A small, real OpenID provider for the tests: authlib's authorization server on Flask.

Run as ``python -m tests.oidc_provider --port P --client-id ID --client-secret S --redirect-uri URL``
(tests/oidc_support.py starts it on 127.0.0.1).  It speaks the authorization
code flow with OpenID Connect and PKCE S256 required of every client (`RequiredS256`),
publishes a discovery document and its RS256 key as a JWKS, and logs users in
through an HTML form.  Users live in memory: alice (groups ["devs"]) and bob
(no groups), passwords ``<name>-op-pw``.
"""

from __future__ import annotations

import argparse
import html
import os
import time
from typing import Any

# authlib refuses plain http unless told: the provider runs on 127.0.0.1 only
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

from authlib.integrations.flask_oauth2 import AuthorizationServer  # noqa: E402
from authlib.oauth2.rfc6749 import grants  # noqa: E402
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oidc.core import UserInfo  # noqa: E402
from authlib.oidc.core.grants import OpenIDCode  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from joserfc.jwk import RSAKey  # noqa: E402

USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-op-pw", "sub": "sub-alice-0001", "groups": ["devs"], "email": "alice@example.test"},
    "bob": {"password": "bob-op-pw", "sub": "sub-bob-0002", "groups": [], "email": "bob@example.test"},
}
KID = "test-key-1"


class User:
    def __init__(self, name: str) -> None:
        self.name = name
        self.info = USERS[name]

    def get_user_id(self) -> str:
        return self.info["sub"]


class Client:
    """The one registered client (harbor-cache), confidential, client_secret_basic or _post."""

    def __init__(self, client_id: str, secret: str, redirect_uri: str) -> None:
        self.client_id, self.client_secret, self.redirect_uri = client_id, secret, redirect_uri

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uri

    def get_allowed_scope(self, scope):
        allowed = {"openid", "profile", "email", "groups"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret):
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


class Code:
    def __init__(self, code, client_id, redirect_uri, scope, user, nonce, challenge, method):
        self.code, self.client_id, self.redirect_uri, self.scope = code, client_id, redirect_uri, scope
        self.user, self.nonce = user, nonce
        self.code_challenge, self.code_challenge_method = challenge, method
        self.auth_time = int(time.time())

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class RequiredS256(CodeChallenge):
    """PKCE with S256 for every client: authlib's ``required=True`` binds public clients only, and
    harbor-cache is a confidential one; a request without a challenge is refused at the authorization."""

    def validate_code_challenge(self, grant, redirect_uri):
        if grant.request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE required: code_challenge with code_challenge_method=S256")
        return super().validate_code_challenge(grant, redirect_uri)


def build_app(issuer: str, client: Client) -> Flask:
    app = Flask(__name__)
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": 3600}
    key = RSAKey.generate_key(2048, parameters={"kid": KID}, private=True)
    codes: dict[str, Code] = {}

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code, req):
            payload = req.payload.data
            codes[code] = Code(
                code,
                req.client.get_client_id(),
                req.payload.redirect_uri,
                req.scope,
                req.user,
                payload.get("nonce"),
                payload.get("code_challenge"),
                payload.get("code_challenge_method"),
            )

        def query_authorization_code(self, code, client):
            item = codes.get(code)
            return item if item is not None and item.client_id == client.get_client_id() else None

        def delete_authorization_code(self, authorization_code):
            codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return authorization_code.user

    class OpenID(OpenIDCode):
        def exists_nonce(self, nonce, req):
            return any(c.nonce == nonce for c in codes.values())

        def resolve_client_private_key(self, c):
            return key

        def get_client_algorithm(self, c):
            return "RS256"

        def get_client_claims(self, c):
            return {"iss": issuer}

        def get_encode_header(self, c):
            return {"alg": "RS256", "kid": KID}

        def generate_user_info(self, user, scope):
            return UserInfo(
                sub=user.info["sub"], preferred_username=user.name, email=user.info["email"], groups=user.info["groups"]
            )

    server = AuthorizationServer(app, query_client=lambda cid: client if cid == client.client_id else None,
                                 save_token=lambda token, req: None)  # fmt: skip
    server.register_grant(CodeGrant, [OpenID(require_nonce=True), RequiredS256(required=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return jsonify(
            issuer=issuer,
            authorization_endpoint=issuer + "/authorize",
            token_endpoint=issuer + "/token",
            jwks_uri=issuer + "/jwks",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            code_challenge_methods_supported=["S256"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            scopes_supported=["openid", "profile", "email", "groups"],
        )

    @app.get("/jwks")
    def jwks():
        return jsonify(keys=[key.as_dict(private=False)])

    def page(body: str, status: int = 200):
        return f"<!doctype html><html><head><title>Test OP</title></head><body>{body}</body></html>", status

    def form(message: str = ""):
        action = html.escape("/authorize?" + request.query_string.decode())
        note = f'<p id="op-error">{html.escape(message)}</p>' if message else ""
        return page(
            f'<h1>Test provider login</h1>{note}<form method="post" action="{action}">'
            '<label>Username <input id="op-username" name="username"></label>'
            '<label>Password <input id="op-password" name="password" type="password"></label>'
            '<button id="op-submit" type="submit">Sign in</button></form>'
        )

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        try:
            server.get_consent_grant(end_user=None)
        except OAuth2Error as e:
            return page(f'<p id="op-error">{html.escape(e.error)}: {html.escape(e.description or "")}</p>', 400)
        if request.method == "GET":
            return form()
        name = request.form.get("username", "")
        if name not in USERS or request.form.get("password") != USERS[name]["password"]:
            return form("wrong username or password")
        return server.create_authorization_response(grant_user=User(name))

    @app.post("/token")
    def token():
        return server.create_token_response()

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    app = build_app(issuer, Client(args.client_id, args.client_secret, args.redirect_uri))
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
