"""Logins checked against an LDAP directory (``[auth.ldap]``): who is asked, and what a yes means here.

`Credentials.check` hands a login here when LDAP is on and the username is
not a local user's (no row, or a row with ``source = 'ldap'``): local users
and robots never reach the directory, and a directory user never
authenticates with a stored password (its ``password_hash`` is the unusable
`UNUSABLE_PASSWORD`).

A yes from the directory writes the user's row (`upsert_directory_user`):
its DN, its role — the highest role its groups map to in
``[auth.ldap.group_roles]``, or ``"none"`` when no group maps to a role (it
can log in, and has only what groups or grants give it) — and its
memberships (``source = 'ldap'``) of the harbor-cache groups mapped by
``group:<name>`` (created when missing).  The directory is the source of
truth: role and memberships are rewritten at every login it confirms.

The directory being down fails closed: `DirectoryUnavailable` (503
``DIRECTORY_UNAVAILABLE``) for every login that needs it, on every front;
one line is logged when an outage starts and one when it ends.  Each answer
of the directory is audited (``login.ldap``, ``login.failed`` with detail
``source: ldap``); a login remembered by `Credentials` does not ask again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from twisted.logger import Logger

from harbor_cache.errors import DirectoryUnavailable
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.core.operations.audit import AuditLog
    from harbor_cache.index import Index

log = Logger()

#: the password_hash of an LDAP user's row: no bcrypt hash, so no password ever matches it
UNUSABLE_PASSWORD = "!ldap"
#: ``[auth.ldap.group_roles]`` values that name a harbor-cache group rather than a role
GROUP_PREFIX = "group:"
#: roles from least to most; an LDAP user gets the highest its groups map to, "none" without one
ROLE_ORDER = ("none", "read-only", "read-write", "admin")
ROBOT_PREFIX = "robot$"


class DirectoryAnswer(Protocol):
    """A user the directory vouched for (`upstream.ldap.DirectoryUser`)."""

    @property
    def dn(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...


class Directory(Protocol):
    """What the core asks of the directory (`upstream.ldap.LdapDirectory`)."""

    async def authenticate(self, username: str, password: str) -> DirectoryAnswer | None: ...


def map_groups(group_roles: tuple[tuple[str, str], ...], groups: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(role, harbor-cache group names) for a user in the LDAP groups ``groups`` (their ``cn``).

    LDAP group names compare case-insensitively (as the directory does).
    """
    mine = {g.lower() for g in groups}
    role = "none"
    names: set[str] = set()
    for cn, target in group_roles:
        if cn.lower() not in mine:
            continue
        if target.startswith(GROUP_PREFIX):
            names.add(target[len(GROUP_PREFIX) :])
        elif ROLE_ORDER.index(target) > ROLE_ORDER.index(role):
            role = target
    return role, tuple(sorted(names))


class DirectoryLogin:
    """``login(username, password)``: the LDAP user's row when the directory says yes, else None."""

    def __init__(
        self,
        directory: Directory,
        index: Index,
        clock: IReactorTime,
        group_roles: tuple[tuple[str, str], ...],
        audit: AuditLog | None = None,
    ) -> None:
        self.directory = directory
        self.index = index
        self.clock = clock
        self.group_roles = group_roles
        self.audit = audit
        self._down_since: float | None = None

    @staticmethod
    def handles(row: User | None) -> bool:
        """True when a login as this row (None: no such user here) is the directory's to decide."""
        return row is None or (row.source == "ldap" and row.kind == "user")

    async def login(self, username: str, password: str, client: str | None = None) -> User | None:
        """The user's row when the directory says yes; ``client`` (the caller's address) goes into the audit."""
        if username.startswith(ROBOT_PREFIX) or not password:
            return None  # robot names are never a directory's; an empty password is never a bind
        try:
            found = await self.directory.authenticate(username, password)
        except DirectoryUnavailable as e:
            self._down(e)
            raise
        self._up()
        if found is None:
            await self._record("login.failed", username, {"source": "ldap"}, client)
            return None
        role, groups = map_groups(self.group_roles, found.groups)
        user = await self.index.upsert_directory_user(
            username, found.dn, role, UNUSABLE_PASSWORD, groups, self.clock.seconds()
        )
        if user is None:  # a local user got the name meanwhile: theirs, not the directory's
            await self._record("login.failed", username, {"source": "ldap", "reason": "local user"}, client)
            return None
        await self._record("login.ldap", username, {"dn": found.dn, "role": role, "groups": list(groups)}, client)
        return user

    async def _record(self, action: str, username: str, detail: dict[str, Any], client: str | None) -> None:
        if self.audit is not None:
            await self.audit.record(action, actor=username[:128], detail=detail, client=client)

    def _down(self, error: DirectoryUnavailable) -> None:
        if self._down_since is None:
            self._down_since = self.clock.seconds()
            log.error(
                "LDAP directory unavailable ({message}: {detail}); LDAP logins get 503 DIRECTORY_UNAVAILABLE "
                "until it is back (local users are not affected)",
                message=error.message,
                detail=error.detail,
            )

    def _up(self) -> None:
        if self._down_since is not None:
            log.info("LDAP directory back after {seconds:.0f} s", seconds=self.clock.seconds() - self._down_since)
            self._down_since = None
