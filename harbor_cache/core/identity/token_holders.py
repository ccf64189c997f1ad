"""Is the holder of a verified token still the user it names, with the rights it claims?

A token's signature only proves what was true when it was issued. Between
then and its expiry (up to 720 h for artifact tokens) the user may have been
deleted, demoted, or changed their password because it leaked. So on every
request, for every token kind, the front looks the user up again:

- a deleted user (or one deleted and re-created under the same name, which
  has a new password hash) holds nothing;
- a disabled or expired account (robots) holds nothing
  (`core.identity.standing.refusal`), though its tokens have not expired;
- a password change (a robot's secret rotation) revokes every token issued before it: tokens carry the
  ``cst`` credential stamp of the hash at issue (`credential_stamp`);
- what a token grants is cut to what the holder's *current* permissions
  allow (`core.identity.principals.permissions_of`: role, own grants,
  groups), per action and repository (and, for Maven, per path), with the
  same decisions that made the token (``auth.access``), so a grant taken
  away or a role lowered applies to the next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harbor_cache.auth import STAMP_CLAIM, InvalidToken, credential_stamp
from harbor_cache.auth.access import SCOPE_ACTIONS, registry_actions
from harbor_cache.auth.permissions import Permissions
from harbor_cache.core.identity.standing import refusal
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from harbor_cache.index import Index


async def current_holder(index: Index, claims: dict, username: str | None, *, now: float) -> User:
    """The user row behind verified ``claims`` at ``now``; InvalidToken when it no longer holds them."""
    user = await index.get_user_by_name(username) if username else None
    if user is None:
        raise InvalidToken("user no longer exists")
    if claims.get(STAMP_CLAIM) != credential_stamp(user.password_hash):
        raise InvalidToken("password changed since the token was issued")
    why = refusal(user, now)
    if why is not None:
        raise InvalidToken(why)
    return user


def current_artifact_scope(permissions: Permissions, claims: dict, scope: str, repo_id: str, path: str) -> bool:
    """True when an artifact token's ``scope`` is still allowed to its holder on ``path`` in ``repo_id``."""
    scopes = claims.get("scope")
    if not isinstance(scopes, list) or scope not in scopes:
        return False
    action = SCOPE_ACTIONS.get(scope)
    return action is not None and permissions.may_maven(action, repo_id, path)


def current_registry_actions(permissions: Permissions, name: str, granted: set[str]) -> set[str]:
    """The actions of a registry token on ``name`` that its holder (or the anonymous caller) may still use."""
    return registry_actions(permissions, name, granted) & granted
