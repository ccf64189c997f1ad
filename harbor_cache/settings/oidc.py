"""``[auth.oidc]``: console login through an OpenID Connect provider (authorization code + PKCE).

No ``[auth.oidc]`` table means OIDC is off: no login button, the OIDC routes
answer 404.  Every key is checked here and named in the error, so a typo or a
contradiction stops the start instead of running a login nobody can use.
The client secret is kept in the config object only (``repr`` hides it); it is
never logged or returned by the API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# the roles of auth.roles.ROLES (settings/ imports no other layer; a test keeps the two equal)
ROLES = ("admin", "read-write", "read-only")

DEFAULT_SCOPES = ("openid", "profile", "email", "groups")


class OidcConfigError(ValueError):
    """A bad ``[auth.oidc]`` key; the message names it (``settings.startup`` turns it into a ConfigError)."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    display_name: str = "OpenID Connect"
    ca_file: str | None = None
    # the public URL of GET /api/v1/auth/oidc/callback as registered at the provider; None: built from
    # [server] public_url, else from the request (behind a proxy: set it, or public_url)
    redirect_url: str | None = None
    # the role of a user none of whose groups is in group_roles
    default_role: str = "read-only"
    # a group name from the groups claim -> a role
    group_roles: dict[str, str] = field(default_factory=dict)
    # how long discovery and the JWKS are reused before they are fetched again
    metadata_ttl_seconds: float = 300.0

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _text(table: dict[str, Any], key: str, default: str | None = None, *, required: bool = False) -> Any:
    if key not in table:
        if required:
            raise OidcConfigError(f"auth.oidc.{key}: required when [auth.oidc] is present")
        return default
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise OidcConfigError(f"auth.oidc.{key}: expected a non-empty string")
    return value


def _http_url(key: str, value: str | None, *, allow_path: bool = True) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise OidcConfigError(f"auth.oidc.{key}: expected an http:// or https:// URL without query, got {value!r}")
    return value


def _role(key: str, value: Any) -> str:
    if value not in ROLES:
        raise OidcConfigError(f"auth.oidc.{key}: expected one of {', '.join(ROLES)}, got {value!r}")
    return value


def parse_oidc(auth: Any) -> OidcConfig | None:
    """The ``[auth.oidc]`` table of the ``[auth]`` table, or None (OIDC off)."""
    if not isinstance(auth, dict):
        raise OidcConfigError("[auth] must be a table")
    table = auth.get("oidc")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise OidcConfigError("[auth.oidc] must be a table")
    issuer = _http_url("issuer", _text(table, "issuer", required=True))
    scopes = table.get("scopes", list(DEFAULT_SCOPES))
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s and " " not in s for s in scopes):
        raise OidcConfigError("auth.oidc.scopes: expected a list of scope names without spaces")
    if "openid" not in scopes:
        raise OidcConfigError("auth.oidc.scopes: must contain 'openid' (without it there is no ID token)")
    ca_file = _text(table, "ca_file")
    if ca_file is not None and not os.path.isfile(ca_file):
        raise OidcConfigError(f"auth.oidc.ca_file: no such file: {ca_file}")
    group_roles = table.get("group_roles", {})
    if not isinstance(group_roles, dict):
        raise OidcConfigError("[auth.oidc.group_roles] must be a table of group name = role")
    ttl = table.get("metadata_ttl_seconds", 300)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl <= 86400:
        raise OidcConfigError("auth.oidc.metadata_ttl_seconds: expected a number between 0 and 86400")
    assert issuer is not None
    return OidcConfig(
        issuer=issuer.rstrip("/"),
        client_id=_text(table, "client_id", required=True),
        client_secret=_text(table, "client_secret", required=True),
        scopes=tuple(scopes),
        groups_claim=_text(table, "groups_claim", "groups"),
        username_claim=_text(table, "username_claim", "preferred_username"),
        display_name=_text(table, "display_name", "OpenID Connect"),
        ca_file=ca_file,
        redirect_url=_http_url("redirect_url", _text(table, "redirect_url")),
        default_role=_role("default_role", table.get("default_role", "read-only")),
        group_roles={str(k): _role(f"group_roles.{k}", v) for k, v in group_roles.items()},
        metadata_ttl_seconds=float(ttl),
    )
