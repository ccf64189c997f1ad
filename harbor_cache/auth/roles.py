"""
Roles, and what each one may do: the decisions of `auth.access` for a role's global grants.

Pure functions, no I/O.  The fronts decide with the caller's full
`Permissions` (role, own grants, groups; `auth.access`); these role-only
forms remain for callers that know just a role, and answer exactly as the
role tables did before grants existed, because a role *is* its grants
(`auth.permissions.role_grants`).
"""

from __future__ import annotations

from harbor_cache.auth.access import (
    ARTIFACT_SCOPES,
    REGISTRY_ACTIONS,
    ArtifactTokenRequestError,
    artifact_scopes_in,
    registry_actions,
)
from harbor_cache.auth.access import plan_artifact_token as plan_for_permissions
from harbor_cache.auth.permissions import Permissions

ROLES = ("admin", "read-write", "read-only")

__all__ = [
    "ARTIFACT_SCOPES",
    "REGISTRY_ACTIONS",
    "ROLES",
    "ArtifactTokenRequestError",
    "allowed_artifact_scopes",
    "allowed_registry_actions",
    "can_push",
    "is_valid_role",
    "plan_artifact_token",
]


def is_valid_role(role: object) -> bool:
    """True when role is one of ROLES (exact, case-sensitive)."""
    return isinstance(role, str) and role in ROLES


def _of_role(role: str | None, anonymous_pull: bool = False) -> Permissions:
    return Permissions.anonymous(anonymous_pull) if role is None else Permissions.of(role)


def can_push(role: str | None) -> bool:
    """True for roles that may write: push to /v2/, upload Maven files."""
    return role is not None and _of_role(role).may_anywhere("push")


def allowed_registry_actions(role: str | None, requested: set[str], anonymous_pull: bool) -> set[str]:
    """
    The subset of requested docker actions that role may have on a repository.

    role None is the anonymous caller: "pull" only, and only when
    anonymous_pull is on.  admin gets exactly what it asked for (including
    "*").  Other roles asking for "*" get their own actions spelled out
    (never "*" itself).  An unknown role gets nothing.
    """
    # A role's grants cover every name alike, so any name stands for all of them.
    return registry_actions(_of_role(role, anonymous_pull), "any", requested)


def allowed_artifact_scopes(role: str | None) -> set[str]:
    """The artifact token scopes role may hold (empty for None/unknown)."""
    return artifact_scopes_in(Permissions.of(role), None) if role is not None else set()


def plan_artifact_token(
    role: str,
    requested_repositories: list[str],
    known_repositories: list[str],
    requested_scopes: list[str],
) -> tuple[list[str], list[str]]:
    """`auth.access.plan_artifact_token` for a role's permissions."""
    return plan_for_permissions(Permissions.of(role), requested_repositories, known_repositories, requested_scopes)
