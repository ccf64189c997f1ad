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
- what a token grants is cut to what the user's *current* role allows,
  per scope or action, with the same role tables that decided it at issue
  (``auth.roles``), so a scope added there (``artifacts:write``) is checked
  the same way without code here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harbor_cache.auth import (
    STAMP_CLAIM,
    InvalidToken,
    allowed_artifact_scopes,
    allowed_registry_actions,
    credential_stamp,
)
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


def current_artifact_scopes(user: User, claims: dict) -> set[str]:
    """The scopes of an artifact token that the holder's role still allows."""
    scopes = claims.get("scope")
    if not isinstance(scopes, list):
        return set()
    return {s for s in scopes if isinstance(s, str)} & allowed_artifact_scopes(user.role)


def current_registry_actions(role: str | None, granted: set[str], anonymous_pull: bool) -> set[str]:
    """The actions of a registry token that its holder (role None: anonymous) may still use."""
    return allowed_registry_actions(role, granted, anonymous_pull) & granted
