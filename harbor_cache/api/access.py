"""The caller's permissions on the management API: kept once per request, asked by every route.

`api.front.ApiFront.authorize` computes them (`core.identity.principals.permissions_of`)
and keeps them on the request; routes ask `caller_permissions` (listings
filter with it, per-repository operations call `require_oci`).  A refusal is
403 ``DENIED`` naming the missing permission ("delete on team-b/app not
granted").
"""

from __future__ import annotations

from typing import Any

from harbor_cache.auth.access import missing_permission
from harbor_cache.auth.permissions import Permissions, grants_json
from harbor_cache.errors import Denied
from harbor_cache.http.request import HarborRequest

_PERMISSIONS_ATTRIBUTE = "harbor_permissions"


def keep_permissions(request: HarborRequest, permissions: Permissions) -> None:
    """Remember the caller's permissions for the rest of this request."""
    setattr(request, _PERMISSIONS_ATTRIBUTE, permissions)


def caller_permissions(request: HarborRequest) -> Permissions:
    """The permissions `ApiFront.authorize` computed for this request's caller (nothing before it ran)."""
    permissions = getattr(request, _PERMISSIONS_ATTRIBUTE, None)
    return permissions if isinstance(permissions, Permissions) else Permissions()


def permissions_view(permissions: Permissions) -> dict[str, Any]:
    """``{"server_admin": bool, "grants": [...]}``: the effective grants (role, own, groups), for the console."""
    return {"server_admin": permissions.server_admin, "grants": grants_json(permissions.grants)}


def require_oci(request: HarborRequest, action: str, repository: str) -> None:
    """403 DENIED naming the missing permission unless the caller may ``action`` on OCI ``repository``."""
    if not caller_permissions(request).may_oci(action, repository):
        reason = missing_permission(action, repository)
        raise Denied(
            reason,
            {"repository": repository, "action": action},
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", error_description="{reason}"'},
        )
