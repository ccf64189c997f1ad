"""
Roles and what each one may do.

Pure functions, no I/O: the fronts ask these questions after they have found
out who the caller is (or that nobody is).  Everything here answers with the
*intersection* of what was asked for and what the role allows, so a token is
never wider than the role, and plan_artifact_token refuses (rather than
narrows) a request that asks for more than the role may have.
"""

from __future__ import annotations

ROLES = ("admin", "read-write", "read-only")

# Docker registry token actions.  "*" is "everything on this repository".
REGISTRY_ACTIONS = ("pull", "push", "delete")
_WILDCARD = "*"

_REGISTRY_ACTIONS_BY_ROLE = {
    "read-only": frozenset({"pull"}),
    "read-write": frozenset({"pull", "push", "delete"}),
}

# Maven (Kagami) artifact token scopes.  artifacts:write deploys (PUT) into a
# hosted repository; like delete, only roles that may push can hold it.
ARTIFACT_SCOPES = ("artifacts:read", "artifacts:delete", "artifacts:write")

_ARTIFACT_SCOPES_BY_ROLE = {
    "admin": ARTIFACT_SCOPES,
    "read-write": ARTIFACT_SCOPES,
    "read-only": ("artifacts:read",),
}


def is_valid_role(role: object) -> bool:
    """True when role is one of ROLES (exact, case-sensitive)."""
    return isinstance(role, str) and role in ROLES


def can_push(role: str | None) -> bool:
    """True for roles that may write: push to /v2/, upload Maven files."""
    return role in ("admin", "read-write")


def allowed_registry_actions(role: str | None, requested: set[str], anonymous_pull: bool) -> set[str]:
    """
    The subset of requested docker actions that role may have on a repository.

    role None is the anonymous caller: "pull" only, and only when
    anonymous_pull is on.  admin gets exactly what it asked for (including
    "*").  Other roles asking for "*" get their own actions spelled out
    (never "*" itself).  An unknown role gets nothing.
    """
    requested = set(requested)
    if role == "admin":
        return requested
    if role is None:
        allowed = frozenset({"pull"}) if anonymous_pull else frozenset()
    else:
        allowed = _REGISTRY_ACTIONS_BY_ROLE.get(role, frozenset())
    if _WILDCARD in requested:
        requested.discard(_WILDCARD)
        requested.update(REGISTRY_ACTIONS)
    return requested & allowed


def allowed_artifact_scopes(role: str | None) -> set[str]:
    """The artifact token scopes role may hold (empty for None/unknown)."""
    return set(_ARTIFACT_SCOPES_BY_ROLE.get(role, ()))  # type: ignore[arg-type]


class ArtifactTokenRequestError(Exception):
    """
    A POST /token request that cannot be honoured as asked.

    status is the HTTP status the Maven front should answer with: 400 for a
    malformed request (unknown scope, unknown repository, bad expiry), 403
    when the request is well formed but asks for more than the role allows.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _clean(items: list[str]) -> list[str]:
    """Strip, drop empty entries and duplicates, keep the caller's order."""
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if item:
            seen.setdefault(item, None)
    return list(seen)


def plan_artifact_token(
    role: str,
    requested_repositories: list[str],
    known_repositories: list[str],
    requested_scopes: list[str],
) -> tuple[list[str], list[str]]:
    """
    Decide exactly which repositories and scopes an artifact token carries.

    No repositories asked for means all known ones; no scopes asked for means
    every scope the role may hold.  Otherwise the answer is precisely what was
    asked (whitespace and duplicates removed), or an
    ArtifactTokenRequestError: 400 for an unknown scope or repository, 403
    for a scope beyond the role.  Never silently narrowed or widened.
    """
    allowed = allowed_artifact_scopes(role)
    scopes = _clean(requested_scopes)
    _refuse_unknown("scope", scopes, ARTIFACT_SCOPES)
    repositories = _clean(requested_repositories)
    _refuse_unknown("repository", repositories, set(known_repositories))
    if not scopes:
        if not allowed:
            raise ArtifactTokenRequestError(403, "role may not hold artifact tokens")
        scopes = [s for s in ARTIFACT_SCOPES if s in allowed]
    beyond = [s for s in scopes if s not in allowed]
    if beyond:
        raise ArtifactTokenRequestError(403, "scope not allowed for role: " + ", ".join(beyond))
    if not repositories:
        repositories = _clean(list(known_repositories))
    return repositories, scopes


def _refuse_unknown(what: str, asked: list[str], known) -> None:
    """400 naming every asked-for ``what`` that is not among ``known``."""
    unknown = [a for a in asked if a not in known]
    if unknown:
        raise ArtifactTokenRequestError(400, f"unknown {what}: " + ", ".join(unknown))
