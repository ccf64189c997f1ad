"""User rules: who may exist, with which role, and how a password is checked.

The management API only parses and shapes; every rule about users is here:

- usernames are 1-128 printable characters without whitespace or ":" (Basic
  authentication splits at the first colon, so such a name could never log in
  to /v2/ or a Maven repository);
- passwords are non-empty and at most 72 UTF-8 bytes (bcrypt ignores the rest);
- roles are one of `auth.ROLES`;
- a username may not start with ``robot$`` (robot accounts are named so);
- own grants are a list `auth.permissions.parse_grants` accepts (400 naming
  the problem), stored in `dump_grants` form;
- the listing and the last-admin rules are about people (kind "user"): a
  robot is neither listed nor found here (``/api/v1/robots`` has them);
- a username is unique (409 on a duplicate);
- an LDAP or OpenID Connect user's password cannot be set (409): it lives in
  the directory, or the user logs in through the provider and uses a CLI
  secret (`core.identity.cli_secret`);
- there is always at least one admin: the last one can neither be deleted
  nor demoted (409, decided inside the SQL transaction so two concurrent
  requests cannot both pass the check).

Hashing runs on a thread (`auth.hash_password`); `authenticate` is the one
credentials check the fronts share (`core.identity.credentials.Credentials`), which
costs one bcrypt check whether or not the user exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harbor_cache.auth import MAX_PASSWORD_BYTES, ROLES, hash_password, is_valid_role
from harbor_cache.auth.permissions import GrantError, dump_grants, parse_grants
from harbor_cache.core.identity.credentials import MAX_USERNAME_LENGTH, Credentials, encodable
from harbor_cache.errors import BadRequest, Conflict, NotFound
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

# SQLite integers are signed 64-bit: a larger id cannot name a user.
MAX_USER_ID = (1 << 63) - 1
#: the prefix of robot accounts' usernames, which no person's may have
ROBOT_PREFIX = "robot$"


def check_username(username: Any) -> str:
    """The username, or BadRequest saying what is wrong with it."""
    if not isinstance(username, str) or not username:
        raise BadRequest("username must be a non-empty string")
    if len(username) > MAX_USERNAME_LENGTH:
        raise BadRequest(f"username longer than {MAX_USERNAME_LENGTH} characters")
    if ":" in username or any(c.isspace() or not c.isprintable() for c in username):
        raise BadRequest("username may not contain whitespace, control characters or ':'")
    if username.startswith("robot$"):  # reserved for robot accounts (core.identity.robots; the audit's actor kind)
        raise BadRequest("usernames starting with robot$ are reserved for robot accounts")
    return username


def check_new_username(username: Any) -> str:
    """A username for a new person: `check_username`, and not a robot's name."""
    username = check_username(username)
    if username.startswith(ROBOT_PREFIX):
        raise BadRequest(f"username may not start with {ROBOT_PREFIX!r} (robot accounts are named so)")
    return username


def check_grants(grants: Any) -> str:
    """A ``grants`` field in its stored form, or BadRequest with the `GrantError` message."""
    try:
        return dump_grants(parse_grants(grants))
    except GrantError as e:
        raise BadRequest(f"grants: {e}", {"field": "grants"}) from None


def check_new_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise BadRequest("password must be a non-empty string")
    if not encodable(password):
        raise BadRequest("password is not valid Unicode")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"password longer than {MAX_PASSWORD_BYTES} bytes")
    return password


def check_role(role: Any) -> str:
    if not is_valid_role(role):
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    return role


#: why an external account's password cannot be set here (409): it is not harbor-cache's to set
EXTERNAL_PASSWORD = {
    "ldap": "an LDAP user's password lives in the directory; change it there",
    "oidc": "an OpenID Connect user has no password here; they log in through the provider and use a CLI secret",
}


class UserService:
    """Create, change, delete and authenticate users; rows are the index's `User` rows."""

    def __init__(
        self,
        index: Index,
        clock: IReactorTime,
        credentials: Credentials,
        *,
        hasher: Callable[[str], Awaitable[str]] = hash_password,
    ) -> None:
        self.index = index
        self.clock = clock
        # bcrypt, off the reactor thread (tests pass an inline version); checks go through ``credentials``.
        self._hash = hasher
        self.credentials = credentials

    async def list(self) -> list[User]:
        """People only (robots are listed by ``/api/v1/robots``)."""
        return await self.index.list_users(kind="user")

    async def find(self, user_id: int, *, robots: bool = False) -> User | None:
        """The user's row, or None (also for ids no user can have, and for robots unless ``robots``)."""
        if not isinstance(user_id, int) or not 0 < user_id <= MAX_USER_ID:
            return None
        row = await self.index.get_user(user_id)
        return row if row is None or robots or row.kind != "robot" else None

    async def get(self, user_id: int) -> User:
        """The person's row; raises NotFound (also for a robot: the users endpoints do not manage robots)."""
        row = await self.find(user_id)
        if row is None or row.kind != "user":
            raise NotFound("user not found", {"id": user_id})
        return row

    async def create(self, username: Any, password: Any, role: Any, grants: Any = None) -> User:
        """The new user's row; BadRequest for bad fields, Conflict for a taken username."""
        username = check_new_username(username)
        password = check_new_password(password)
        role = check_role(role)
        stored = check_grants(grants) if grants is not None else "[]"
        if await self.index.get_user_by_name(username) is not None:
            raise Conflict("username already exists", {"username": username})
        hashed = await self._hash(password)
        row = await self.index.create_user(username, hashed, role, self.clock.seconds(), grants=stored)
        if row is None:  # created by a concurrent request while we hashed
            raise Conflict("username already exists", {"username": username})
        return row

    async def update(self, user_id: int, *, role: Any = None, password: Any = None, grants: Any = None) -> User:
        """Change the given fields (None = leave as is); the updated row.

        Raises NotFound, BadRequest, or Conflict when it would demote the last admin or set an
        external (LDAP, OpenID Connect) user's password.
        """
        if role is not None:
            check_role(role)
        if password is not None:
            check_new_password(password)
        stored = check_grants(grants) if grants is not None else None
        current = await self.get(user_id)
        if password is not None and current.source != "local":
            raise Conflict(EXTERNAL_PASSWORD.get(current.source, "this user has no local password"), {"id": user_id})
        hashed = await self._hash(password) if password is not None else None
        status, row = await self.index.update_user(user_id, role, hashed, self.clock.seconds(), grants=stored)
        if status == "last_admin":
            raise Conflict("the last admin cannot be demoted", {"id": user_id})
        if row is None:  # "missing"
            raise NotFound("user not found", {"id": user_id})
        return row

    async def delete(self, user_id: int) -> None:
        """Raises NotFound, or Conflict for the last admin."""
        await self.get(user_id)
        status = await self.index.delete_user(user_id)
        if status == "missing":
            raise NotFound("user not found", {"id": user_id})
        if status == "last_admin":
            raise Conflict("the last admin cannot be deleted", {"id": user_id})

    async def authenticate(self, username: Any, password: Any, client: str | None = None) -> User | None:
        """The user's row when the password matches, else None (`core.identity.credentials.Credentials`)."""
        return await self.credentials.check(username, password, client)
