"""OpenID Connect console login and CLI secrets (api/oidc.py, core/identity/oidc.py, ``[auth.oidc]``)."""

from __future__ import annotations

from harbor_cache.api.openapi.common import STRING, errors, header, json_body, obj, operation, query_param, ref

SCHEMAS = {
    "AuthMethods": obj(
        ["password", "oidc"],
        password={"type": "boolean", "description": "POST /api/v1/auth/login is offered (always true)"},
        oidc={
            "anyOf": [
                obj(
                    ["display_name", "login_url"],
                    display_name={**STRING, "description": "The button text: Log in with <display_name>"},
                    login_url=STRING,
                ),
                {"type": "null"},
            ],
            "description": "null when [auth.oidc] is not configured",
        },
    ),
    "CliSecretStatus": obj(
        ["username", "available", "has_secret"],
        username=STRING,
        available={"type": "boolean", "description": "The caller logs in through OpenID Connect (may have one)"},
        has_secret={"type": "boolean"},
    ),
    "CliSecret": obj(
        ["username", "secret", "token", "expires_in"],
        username=STRING,
        secret={**STRING, "description": "Shown once: the password of docker/podman/skopeo/mvn for this user"},
        token={**STRING, "description": "A new management token (the caller's token ends with the old secret)"},
        expires_in={"type": "integer"},
    ),
}

_REDIRECT = {
    "Location": header("Where the browser goes next"),
    "Set-Cookie": header("The state cookie", required=False),
}
_NOT_CONFIGURED = errors({404: "[auth.oidc] is not configured (code NOT_FOUND)."})


def paths() -> dict:
    """The login methods, the two halves of the OIDC code flow, and the caller's CLI secret."""
    return {
        "/api/v1/auth/methods": {
            "get": operation(
                "authMethods",
                "How users may log in to the console",
                {
                    "200": json_body(
                        ref("AuthMethods"), "The console shows Log in with <display_name> when oidc is set."
                    )
                },
                tag="management",
                security=[],
            )
        },
        "/api/v1/auth/oidc/login": {
            "get": operation(
                "oidcLogin",
                "Start a login through the OpenID provider",
                {
                    "302": {
                        "description": "To the provider's authorization endpoint (response_type=code, state, nonce, "
                        "PKCE S256), with a signed HttpOnly SameSite=Lax state cookie valid 10 minutes; when the "
                        "provider cannot be reached, to /ui/#/login?oidc_error=<reason>.",
                        "headers": _REDIRECT,
                    },
                    **_NOT_CONFIGURED,
                },
                tag="management",
                security=[],
            )
        },
        "/api/v1/auth/oidc/callback": {
            "get": operation(
                "oidcCallback",
                "Finish a login through the OpenID provider (the redirect URL registered there)",
                {
                    "302": {
                        "description": "To /ui/#/oidc?token=<management token> (a URL fragment, which the console "
                        "stores and removes) on success, audited as login.oidc; to /ui/#/login?oidc_error=<reason> "
                        "on any failure (state, code exchange, ID token, username taken), audited as login.failed.",
                        "headers": _REDIRECT,
                    },
                    **_NOT_CONFIGURED,
                },
                tag="management",
                security=[],
                parameters=[
                    query_param("code", STRING, "The authorization code"),
                    query_param("state", STRING, "The state sent with the authorization request"),
                    query_param("error", STRING, "The provider's error, instead of a code"),
                ],
            )
        },
        "/api/v1/users/me/cli-secret": {
            "get": operation(
                "cliSecretStatus",
                "Whether the caller may have, and has, a CLI secret",
                {"200": json_body(ref("CliSecretStatus"), "The caller's CLI secret state.")},
                tag="management",
                role="any authenticated user",
            ),
            "post": operation(
                "cliSecretGenerate",
                "Make a new CLI secret (OpenID Connect users)",
                {
                    "200": json_body(ref("CliSecret"), "The new secret, shown once; the previous one stops working."),
                    **errors({409: "The caller is not an OpenID Connect user (code CONFLICT)."}),
                },
                tag="management",
                role="any authenticated user",
            ),
        },
    }
