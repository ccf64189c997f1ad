"""What a caller may do: one decision, made here, that every front asks for.

A caller is a user (local, LDAP or OIDC), a robot (a ``users`` row of kind
"robot"), or nobody.  Their `Permissions` are the union of the grants of
their role, their own grants and those of every group they are in (with the
groups' roles); a robot has no role and no groups, only its grants.  The
fronts never look at roles or grants themselves: `/v2/` cuts token scopes to
`Permissions.oci_actions`, the Maven front checks `Permissions.may_maven`,
the management API filters listings and checks ``admin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harbor_cache.auth.permissions import Permissions, load_grants
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from harbor_cache.index import Index


async def permissions_of(index: Index, user: User | None, anonymous_pull: bool) -> Permissions:
    """The caller's permissions; None is the anonymous caller."""
    if user is None:
        return Permissions.anonymous(anonymous_pull)
    own = load_grants(user.grants)
    if user.kind == "robot":
        return Permissions.of(None, own)
    groups = await index.groups_of_user(user.id)
    return Permissions.of(
        user.role,
        own,
        *(load_grants(g.grants) for g in groups),
        group_roles=[g.role for g in groups],
    )


def own_permissions(user: User) -> Permissions:
    """The permissions a user holds without their groups: role and own grants (a robot: its grants).

    Never more than `permissions_of`, so a front may allow on these alone
    and ask for the groups (one more index query) only when they fall short.
    """
    own = load_grants(user.grants)
    return Permissions.of(None if user.kind == "robot" else user.role, own)
