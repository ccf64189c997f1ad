"""The one username/password check, used by ``/v2/``, the Maven front and the management API.

bcrypt is slow on purpose, and clients send Basic credentials on every
request (docker with ``--password``, a Maven deploy of a dozen PUTs), so a
successful check is remembered for `REMEMBER_SECONDS` under a hash of
(username, password, stored password hash), never the password itself.  The
user is still read on every request, and a remembered check counts only while
the stored hash is the one it was made against: a password change ends it at
once.  An unknown user costs one bcrypt check (against a dummy hash), so the
timing of a refusal does not reveal which usernames exist.

A username with a control character (NUL: PostgreSQL refuses it in text) is
not a wrong password but bad input, whichever front it came through (login
JSON, Basic on ``/v2/``, ``/v2/token``, ``POST /token``, Maven routes): it is
refused with `BadRequest` (400) before any lookup, and never reaches the
index or the audit log.

With ``[auth.ldap]`` a username that is no local user's (no row, or a row
with ``source = 'ldap'``) is the directory's to check
(`core.identity.directory.DirectoryLogin`); its yes is remembered the same
way, so a push of many requests binds once per `REMEMBER_SECONDS`.
A disabled or expired account (`core.identity.standing.refusal`: robots,
mostly) fails the check like a wrong password, after the same bcrypt work; a
robot's successful check is noted as its last use (`standing.LastUse`,
throttled, never waited for).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime

from harbor_cache.auth import check_password
from harbor_cache.core.identity.standing import LastUse, refusal
from harbor_cache.errors import BadRequest
from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from harbor_cache.core.identity.directory import DirectoryLogin
    from harbor_cache.index import Index

# Usernames are at most this long (`core.identity.users.check_username`): a longer one is never looked up.
MAX_USERNAME_LENGTH = 128
REMEMBER_SECONDS = 60.0
REMEMBER_SIZE = 1024

PasswordChecker = Callable[[str, "str | None"], Awaitable[bool]]


def encodable(text: str) -> bool:
    """False for strings holding lone surrogates (JSON allows "\\ud800"; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Credentials:
    """``check(username, password)``: the user's row when the password is right, else None."""

    def __init__(
        self,
        index: Index,
        clock: IReactorTime,
        checker: PasswordChecker = check_password,
        last_use: LastUse | None = None,
    ) -> None:
        self.index = index
        self.clock = clock
        self._check = checker
        self._remembered: dict[bytes, float] = {}  # sha256(username, password, hash) -> until
        self.directory: DirectoryLogin | None = None  # [auth.ldap]: set by the service when LDAP is on
        self.last_use = last_use if last_use is not None else LastUse(index, clock)

    async def check(self, username: Any, password: Any, client: str | None = None) -> User | None:
        """The user's row when the password is right and the account may act now, else None.

        `BadRequest` for a username no user can have.  ``client``: the caller's
        address, recorded as a robot's last use and in the audit record of an LDAP login.
        """
        row = await self._verified(username, password, client)
        if row is None or refusal(row, self.clock.seconds()) is not None:
            return None
        self.note_use(row, client)
        return row

    def note_use(self, user: User, client: str | None) -> None:
        """Record a use of ``user``'s credentials or tokens (robots only; throttled; never fails)."""
        self.last_use.note(user, client)

    async def _verified(self, username: Any, password: Any, client: str | None = None) -> User | None:
        """The row when the password is right (whatever its standing), else None."""
        if isinstance(username, str) and not is_clean_text(username):
            raise BadRequest("username may not contain control characters")
        row = None
        usable = isinstance(username, str) and 0 < len(username) <= MAX_USERNAME_LENGTH and encodable(username)
        if usable:
            row = await self.index.get_user_by_name(username)
        if not isinstance(password, str):
            password = ""
        if usable and self.directory is not None and self.directory.handles(row):
            return await self._ask_directory(username, password, row, client)
        if row is None:
            await self._check(password, None)  # the same cost as a wrong password
            return None
        hashed = row.password_hash
        key = hashlib.sha256("\0".join((username, password, hashed)).encode("utf-8", "surrogatepass")).digest()
        now = self.clock.seconds()
        until = self._remembered.get(key)
        if until is not None and until > now:
            return row
        if not await self._check(password, hashed):
            return None
        self._remember(key, now)
        return row

    async def _ask_directory(
        self, username: str, password: str, row: User | None, client: str | None = None
    ) -> User | None:
        """An LDAP login: remembered like a local one (keyed apart from any stored hash), else the directory."""
        assert self.directory is not None
        key = hashlib.sha256("\0".join(("ldap", username, password)).encode("utf-8", "surrogatepass")).digest()
        now = self.clock.seconds()
        until = self._remembered.get(key)
        if row is not None and until is not None and until > now:
            return row
        user = await self.directory.login(username, password, client)
        if user is not None:
            self._remember(key, self.clock.seconds())
        return user

    def _remember(self, key: bytes, now: float) -> None:
        if len(self._remembered) >= REMEMBER_SIZE:
            self._remembered = {k: t for k, t in self._remembered.items() if t > now}
            if len(self._remembered) >= REMEMBER_SIZE:
                self._remembered.clear()
        self._remembered[key] = now + REMEMBER_SECONDS
