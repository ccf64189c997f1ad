"""``[auth.ldap]``: checking logins against an LDAP directory (`core.identity.directory`).

No ``[auth.ldap]`` table means LDAP is off and nothing changes for local users.
Every key is checked here, once, at start: a contradiction (StartTLS on an
``ldaps://`` URL, ``group_filter`` with ``group_membership = "memberOf"``, a
``bind_dn`` without its password) stops the start naming the key, as every
other section does.  ``bind_password`` never appears in a repr (nor,
therefore, in a log line that prints the config).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harbor_cache.grammar.client_text import is_clean_text

# The roles a group may map to (`auth.roles.ROLES`; settings/ may not import auth/).
LDAP_ROLES = ("admin", "read-write", "read-only")
# `group_roles` values that name a harbor-cache group instead of a role: "group:<name>".
GROUP_PREFIX = "group:"
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MEMBERSHIPS = ("search", "memberOf")
DEFAULT_USER_FILTER = "(uid={username})"
DEFAULT_GROUP_FILTER = "(member={dn})"
MAX_TIMEOUT_SECONDS = 300.0


class LdapConfigError(ValueError):
    """A key of ``[auth.ldap]`` is not usable; the message starts with its path."""


@dataclass(frozen=True)
class LdapConfig:
    """The directory to ask, how to find a user and their groups, and what the groups mean here."""

    host: str
    port: int
    #: ``ldaps://``: TLS from the first byte; otherwise ``start_tls`` says whether StartTLS runs before any bind
    ldaps: bool
    start_tls: bool
    user_base: str
    bind_dn: str | None = None
    bind_password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    user_filter: str = DEFAULT_USER_FILTER
    #: "search": groups are the entries under group_base matching group_filter; "memberOf": the user's attribute
    group_membership: str = "search"
    group_base: str | None = None
    group_filter: str = DEFAULT_GROUP_FILTER
    timeout_seconds: float = 5.0
    #: an LDAP group's cn -> a role ("read-write") or a harbor-cache group ("group:team-a")
    group_roles: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"{'ldaps' if self.ldaps else 'ldap'}://{self.host}:{self.port}"


def _take(table: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        shown = "<hidden>" if key == "bind_password" else repr(value)
        raise LdapConfigError(f"auth.ldap.{key}: expected {kind.__name__}, got {shown}")
    return value


def _text(table: dict[str, Any], key: str, default: str | None = None, required: bool = False) -> str | None:
    value = _take(table, key, str, default)
    if required and not value:
        raise LdapConfigError(f"auth.ldap.{key} is required")
    if value is not None and not is_clean_text(value):
        raise LdapConfigError(f"auth.ldap.{key}: may not contain control characters")
    return value


def _filter(table: dict[str, Any], key: str, default: str, placeholders: tuple[str, ...]) -> str:
    value = _text(table, key, default) or ""
    if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
        raise LdapConfigError(f"auth.ldap.{key}: expected an LDAP filter in parentheses, got {value!r}")
    if not any("{" + p + "}" in value for p in placeholders):
        named = " or ".join("{" + p + "}" for p in placeholders)
        raise LdapConfigError(f"auth.ldap.{key}: must contain {named}, got {value!r}")
    return value


def _url(value: str | None) -> tuple[str, int, bool]:
    if not value:
        raise LdapConfigError("auth.ldap.url is required")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise LdapConfigError(f"auth.ldap.url: not a URL: {value!r}") from None
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise LdapConfigError(f"auth.ldap.url: expected ldap://host:port or ldaps://host:port, got {value!r}")
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise LdapConfigError(f"auth.ldap.url: only a scheme, host and port, got {value!r}")
    ldaps = parts.scheme == "ldaps"
    return parts.hostname, port or (636 if ldaps else 389), ldaps


def _group_roles(table: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(table, dict):
        raise LdapConfigError('auth.ldap.group_roles must be a table (cn = "role" or "group:<name>")')
    out = []
    for cn, target in table.items():
        where = f"auth.ldap.group_roles.{cn}"
        if not cn or not is_clean_text(cn):
            raise LdapConfigError(f"{where}: not a usable group cn")
        if not isinstance(target, str):
            raise LdapConfigError(f"{where}: expected a string, got {target!r}")
        if target.startswith(GROUP_PREFIX):
            if not GROUP_NAME.fullmatch(target[len(GROUP_PREFIX) :]):
                raise LdapConfigError(
                    f"{where}: group:<name> needs 1 to 64 letters, digits, '.', '_' or '-', got {target!r}"
                )
        elif target not in LDAP_ROLES:
            raise LdapConfigError(f"{where}: expected one of {', '.join(LDAP_ROLES)} or group:<name>, got {target!r}")
        out.append((cn, target))
    return tuple(out)


def parse_ldap(auth: Any) -> LdapConfig | None:
    """The ``[auth.ldap]`` table of the ``[auth]`` table, or None when there is none (LDAP off)."""
    if not isinstance(auth, dict):
        raise LdapConfigError("[auth] must be a table")
    if "ldap" not in auth:
        return None
    table = auth["ldap"]
    if not isinstance(table, dict):
        raise LdapConfigError("[auth.ldap] must be a table")
    host, port, ldaps = _url(_text(table, "url"))
    start_tls = _take(table, "start_tls", bool, not ldaps)
    if ldaps and start_tls:
        raise LdapConfigError("auth.ldap.start_tls: an ldaps:// URL is TLS already (remove start_tls or use ldap://)")
    bind_dn = _text(table, "bind_dn")
    bind_password = _take(table, "bind_password", str)
    if (bind_dn is None) != (bind_password is None):
        key = "bind_password" if bind_password is None else "bind_dn"
        raise LdapConfigError(f"auth.ldap.{key} is required with the other (or leave both out for anonymous search)")
    if bind_password is not None and (not bind_password or "\0" in bind_password):
        raise LdapConfigError(
            "auth.ldap.bind_password: must not be empty (an empty password is an unauthenticated bind)"
        )
    ca_file = _text(table, "ca_file")
    if ca_file is not None and not os.path.isfile(ca_file):
        raise LdapConfigError(f"auth.ldap.ca_file: no such file: {ca_file!r}")
    if ca_file is not None and not (ldaps or start_tls):
        raise LdapConfigError("auth.ldap.ca_file: no TLS is used (start_tls = false on an ldap:// URL)")
    membership = _text(table, "group_membership", "search")
    if membership not in MEMBERSHIPS:
        raise LdapConfigError(f"auth.ldap.group_membership: expected search or memberOf, got {membership!r}")
    if membership == "memberOf":
        for key in ("group_base", "group_filter"):
            if key in table:
                raise LdapConfigError(f'auth.ldap.{key}: not used with group_membership = "memberOf"')
    timeout = _take(table, "timeout_seconds", float, 5.0)
    if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
        raise LdapConfigError(f"auth.ldap.timeout_seconds: must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}")
    return LdapConfig(
        host=host,
        port=port,
        ldaps=ldaps,
        start_tls=start_tls,
        bind_dn=bind_dn,
        bind_password=bind_password,
        ca_file=ca_file,
        user_base=_text(table, "user_base", required=True) or "",
        user_filter=_filter(table, "user_filter", DEFAULT_USER_FILTER, ("username",)),
        group_membership=membership,
        group_base=_text(table, "group_base", required=membership == "search"),
        group_filter=_filter(table, "group_filter", DEFAULT_GROUP_FILTER, ("dn", "username")),
        timeout_seconds=timeout,
        group_roles=_group_roles(table.get("group_roles", {})),
    )
