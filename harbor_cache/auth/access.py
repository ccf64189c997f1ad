"""What a caller's `Permissions` allow on each front, as pure decisions (no I/O, no Twisted).

Every front asks these questions after `core.identity.principals.permissions_of`
has computed the caller's permissions once for the request, so ``/v2/``, the
Maven front and the management API decide with the same grants.  The role
functions of `auth.roles` are these decisions for the role's global grants, so
a configuration that only uses roles behaves exactly as before grants existed.

* ``/v2/``: `registry_actions` cuts the docker actions asked for (``*`` is
  "everything") to what the grants allow on one repository name;
* Maven: an artifact token scope stands for an action (`SCOPE_ACTIONS`);
  `plan_artifact_token` decides which repositories and scopes a token carries,
  and every use is checked again, per path, with `Permissions.may_maven`;
* refusals name what is missing (`missing_permission`): "push on team-b/app
  not granted".
"""

from __future__ import annotations

from collections.abc import Iterable

from harbor_cache.auth.permissions import Permissions, maven_matches

# Docker registry token actions.  "*" is "everything on this repository".
REGISTRY_ACTIONS = ("pull", "push", "delete")
WILDCARD = "*"

# Maven (Kagami) artifact token scopes and the action each stands for.
ARTIFACT_SCOPES = ("artifacts:read", "artifacts:delete", "artifacts:write")
SCOPE_ACTIONS = {"artifacts:read": "pull", "artifacts:delete": "delete", "artifacts:write": "push"}


class ArtifactTokenRequestError(Exception):
    """
    A POST /token request that cannot be honoured as asked.

    status is the HTTP status the Maven front should answer with: 400 for a
    malformed request (unknown scope, unknown repository, bad expiry), 403
    when the request is well formed but asks for more than the grants allow.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def registry_actions(permissions: Permissions, name: str, requested: Iterable[str]) -> set[str]:
    """The subset of the requested docker actions the permissions allow on repository ``name``.

    A server admin gets exactly what it asked for (``*`` included); anyone
    else asking for ``*`` gets their own actions spelled out, never ``*``.
    """
    wanted = set(requested)
    if permissions.server_admin:
        return wanted
    if WILDCARD in wanted:
        wanted.discard(WILDCARD)
        wanted.update(REGISTRY_ACTIONS)
    return wanted & permissions.oci_actions(name)


def missing_permission(action: str, where: str) -> str:
    """The sentence a 403 carries: which permission the caller lacks, and where."""
    return f"{action} on {where} not granted"


def maven_actions_in(permissions: Permissions, repository_id: str) -> frozenset[str]:
    """The actions granted anywhere in one Maven repository (on the whole of it or on a path prefix).

    What a token for the repository may carry; each use is then checked on
    its path (`Permissions.may_maven`).
    """
    if permissions.server_admin:
        return frozenset(SCOPE_ACTIONS.values())
    allowed: set[str] = set()
    for grant in permissions.grants:
        if grant.is_maven and maven_matches(grant, repository_id, grant.maven_parts()[1]):
            allowed |= grant.allowed()
    return frozenset(allowed)


def maven_pull_prefixes(permissions: Permissions, repository_id: str) -> tuple[str, ...] | None:
    """Where in a Maven repository ``pull`` is granted: None for all of it, else the path prefixes (maybe none)."""
    if permissions.server_admin:
        return None
    prefixes: list[str] = []
    for grant in permissions.grants:
        if not grant.is_maven or "pull" not in grant.allowed():
            continue
        repo, prefix = grant.maven_parts()
        if repo in ("*", repository_id):
            if not prefix:
                return None
            prefixes.append(prefix)
    return tuple(prefixes)


def on_the_way(prefixes: Iterable[str], path: str) -> bool:
    """True when ``path`` is under one of ``prefixes`` or a directory on the way to one (browsing down to it)."""
    path = path.strip("/")
    return any(not path or path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in prefixes)


def _maven_anywhere(permissions: Permissions, action: str) -> bool:
    return permissions.may_anywhere(action, maven=True)


def artifact_scopes_in(permissions: Permissions, repository_id: str | None) -> set[str]:
    """The artifact scopes a token may carry for ``repository_id`` (None: for some Maven repository)."""
    if repository_id is None:
        return {s for s, a in SCOPE_ACTIONS.items() if _maven_anywhere(permissions, a)}
    actions = maven_actions_in(permissions, repository_id)
    return {s for s, a in SCOPE_ACTIONS.items() if a in actions}


def _clean(items: list[str]) -> list[str]:
    """Strip, drop empty entries and duplicates, keep the caller's order."""
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if item:
            seen.setdefault(item, None)
    return list(seen)


def _refuse_unknown(what: str, asked: list[str], known: Iterable[str]) -> None:
    """400 naming every asked-for ``what`` that is not among ``known``."""
    known = set(known)
    unknown = [a for a in asked if a not in known]
    if unknown:
        raise ArtifactTokenRequestError(400, f"unknown {what}: " + ", ".join(unknown))


def plan_artifact_token(
    permissions: Permissions,
    requested_repositories: list[str],
    known_repositories: list[str],
    requested_scopes: list[str],
) -> tuple[list[str], list[str]]:
    """
    Decide exactly which repositories and scopes an artifact token carries.

    What was asked for is honoured exactly or refused, never narrowed or
    widened: 400 for an unknown scope or repository, 403 when a scope asked
    for is not granted on a repository asked for (or, with no repository
    asked for, nowhere).  What was left out is filled in from the grants: no
    scopes asked for means every scope granted (on the repositories asked
    for, or anywhere); no repositories asked for means every known
    repository where one of the token's scopes is granted.  A token's use is
    checked again on each request, per path, against the holder's current
    permissions.
    """
    scopes = _clean(requested_scopes)
    _refuse_unknown("scope", scopes, ARTIFACT_SCOPES)
    repositories = _clean(requested_repositories)
    _refuse_unknown("repository", repositories, known_repositories)
    per_repo = {r: artifact_scopes_in(permissions, r) for r in repositories}
    if scopes:
        if repositories:
            for repo in repositories:
                beyond = [s for s in scopes if s not in per_repo[repo]]
                if beyond:
                    denied = ", ".join(missing_permission(SCOPE_ACTIONS[s], f"maven:{repo}") for s in beyond)
                    raise ArtifactTokenRequestError(403, f"scope not allowed: {', '.join(beyond)} ({denied})")
        else:
            anywhere = artifact_scopes_in(permissions, None)
            beyond = [s for s in scopes if s not in anywhere]
            if beyond:
                raise ArtifactTokenRequestError(403, "scope not allowed: " + ", ".join(beyond))
    else:
        if repositories:
            granted = set().union(*per_repo.values())
            bare = [r for r in repositories if not per_repo[r]]
            if bare:
                raise ArtifactTokenRequestError(403, "no artifact scope granted on: " + ", ".join(bare))
        else:
            granted = artifact_scopes_in(permissions, None)
        if not granted:
            raise ArtifactTokenRequestError(403, "no artifact scope granted: may not hold artifact tokens")
        scopes = [s for s in ARTIFACT_SCOPES if s in granted]
    if not repositories:
        wanted = set(scopes)
        repositories = [r for r in _clean(list(known_repositories)) if wanted & artifact_scopes_in(permissions, r)]
    return repositories, scopes
