"""CLI secrets of OpenID Connect users (as Harbor has them).

An OIDC user has no password here: the console logs in through the provider,
but docker, skopeo and Maven send Basic credentials.  The user makes a CLI
secret in the console; its bcrypt hash becomes the row's ``password_hash``,
so the one credentials check (`core.identity.credentials.Credentials`) takes
``<username>:<secret>`` with no OIDC-specific code.  The secret is shown once
and never stored in clear; a new one replaces the old at once (and, through
the token stamp, ends tokens minted from the old one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from harbor_cache.core.identity.oidc_state import random_token
from harbor_cache.errors import Conflict, NotFound
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

SECRET_BYTES = 24  # 32 URL-safe characters: well under bcrypt's 72 bytes


def has_cli_secret(user: User) -> bool:
    """True when an OIDC user's stored hash is a real one (not the unusable marker of `oidc.unusable_password`)."""
    return user.source == "oidc" and not user.password_hash.startswith("!")


class CliSecrets:
    """Make (or replace) the CLI secret of an OIDC user."""

    def __init__(self, index: Index, clock: IReactorTime, hasher: Callable[[str], Awaitable[str]]) -> None:
        self.index = index
        self.clock = clock
        self._hash = hasher

    async def generate(self, user: User) -> tuple[str, User]:
        """(the new secret, the updated row); Conflict for an account that is not an OIDC user's."""
        if user.source != "oidc" or user.kind != "user":
            raise Conflict(
                "CLI secrets are for users who log in through OpenID Connect; use your password instead",
                {"source": user.source},
            )
        secret = random_token(SECRET_BYTES)
        hashed = await self._hash(secret)
        status, row = await self.index.update_user(user.id, None, hashed, self.clock.seconds())
        if row is None:
            raise NotFound("user not found", {"id": user.id})
        return secret, row
