"""Robot accounts for CI: who may create and manage them, their names, secrets and expiry.

A robot is a ``users`` row of kind 'robot', role 'none', named
``robot$<name>`` as Harbor spells it; its password hash is the bcrypt hash of
its secret.  So the one credentials check (`core.identity.credentials`)
authenticates it on every front, its permissions are its own grants only
(`core.identity.principals.permissions_of`), and every token minted with a
secret dies when the secret is rotated (tokens carry a stamp of the hash).

The rules, all decided here (the API front only parses and shapes):

- a name is 1-64 characters of ``a-z 0-9 . _ -`` (400), unique among all
  accounts (409);
- the secret is ``secrets.token_urlsafe(32)``, hashed off the reactor, shown
  once (create and rotate) and never logged or stored in clear;
- ``expires_in_days`` is 1 to ``robots.max_expiry_days`` (runtime setting,
  default 365); ``-1`` or ``null`` is "never expires"; left out on create it
  is the maximum;
- a server admin may create any robot.  Anyone else needs ``admin`` on every
  pattern the robot's grants name (so the grants are no wider than the
  creator's); the 403 names the first grant that is too wide.  Robots never
  create or manage robots (a leaked CI secret must not mint more secrets);
- the robots a caller sees: all for a server admin; otherwise those they
  created or administer (admin on all of the robot's grants).  Changing,
  enabling or rotating needs "administer"; disabling and deleting (which only
  take access away) are allowed to the creator too.  A robot the caller may
  not see is 404.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from harbor_cache.auth import hash_password
from harbor_cache.auth.permissions import Grant, GrantError, Permissions, dump_grants, load_grants, parse_grants
from harbor_cache.core.identity.principals import permissions_of
from harbor_cache.errors import BadRequest, Conflict, Denied, NotFound
from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

ROBOT_PREFIX = "robot$"
NAME_RULE = "1-64 characters of a-z, 0-9, '.', '_' and '-'"
_NAME = re.compile(r"[a-z0-9._-]{1,64}")
MAX_DESCRIPTION = 1024
DAY = 86400.0
# SQLite integers are signed 64-bit: a larger id cannot name a robot.
MAX_ROBOT_ID = (1 << 63) - 1
NEVER = -1


def new_secret() -> str:
    """A fresh robot secret: 32 random bytes, URL-safe base64 (43 characters, within bcrypt's 72 bytes)."""
    return secrets.token_urlsafe(32)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadRequest(f"name must be {NAME_RULE}", {"name": name if isinstance(name, str) else None})
    return name


def check_description(description: Any) -> str:
    if not isinstance(description, str):
        raise BadRequest("description must be a string")
    if len(description) > MAX_DESCRIPTION or not is_clean_text(description):
        raise BadRequest(f"description must be at most {MAX_DESCRIPTION} characters without control characters")
    return description


def check_grants(grants: Any) -> tuple[Grant, ...]:
    try:
        return parse_grants(grants)
    except GrantError as e:
        raise BadRequest(f"grants: {e}") from None


def _as_admin(grant: Grant) -> Grant:
    return Grant(grant.repositories, frozenset({"admin"}))


def too_wide(perms: Permissions, grants: tuple[Grant, ...]) -> list[Grant]:
    """The grants whose patterns ``perms`` does not hold ``admin`` on (a server admin holds it everywhere)."""
    if perms.server_admin:
        return []
    return [g for g in grants if perms.covers([_as_admin(g)])]


class RobotService:
    """Create, list, change, rotate and delete robot accounts on behalf of a caller (a `User` row)."""

    def __init__(
        self,
        index: Index,
        clock: IReactorTime,
        settings: Any,
        *,
        hasher: Callable[[str], Awaitable[str]] = hash_password,
        secret: Callable[[], str] = new_secret,
    ) -> None:
        self.index = index
        self.clock = clock
        self.settings = settings  # settings.runtime.RuntimeSettings: robots.max_expiry_days
        self._hash = hasher  # bcrypt on a thread (the users' hasher)
        self._secret = secret

    # -- rules ---------------------------------------------------------------------------

    def expires_at(self, value: Any) -> float | None:
        """The expiry time of ``expires_in_days`` (None: never); BadRequest naming the limit."""
        if value is None or value == NEVER and not isinstance(value, bool):
            return None
        limit = int(self.settings.get("robots.max_expiry_days"))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise BadRequest(
                f"expires_in_days must be an integer from 1 to {limit} (robots.max_expiry_days), or -1 or null "
                "for never",
                {"expires_in_days": value if isinstance(value, int) else None},
            )
        return self.clock.seconds() + value * DAY

    async def permissions(self, caller: User) -> Permissions:
        """What the caller may do (robots may not manage robots: Denied)."""
        if caller.kind == "robot":
            raise Denied("robot accounts cannot manage robot accounts", {"username": caller.username})
        return await permissions_of(self.index, caller, anonymous_pull=False)

    def _check_grantable(self, perms: Permissions, grants: tuple[Grant, ...]) -> None:
        if not perms.may_anywhere("admin"):
            raise Denied("admin permission on some repositories is required to manage robot accounts")
        wide = too_wide(perms, grants)
        if wide:
            g = wide[0]
            raise Denied(
                f"grant on {g.repositories!r} is wider than yours: admin on {g.repositories!r} required",
                {"grant": g.as_json()},
            )

    @staticmethod
    def administers(perms: Permissions, robot: User) -> bool:
        """True when ``perms`` may change the robot: a server admin, or admin on each of its (some) grants."""
        if perms.server_admin:
            return True
        grants = load_grants(robot.grants)
        return bool(grants) and not too_wide(perms, grants)

    def _sees(self, caller: User, perms: Permissions, robot: User) -> bool:
        return robot.created_by == caller.username or self.administers(perms, robot)

    async def _robot(self, caller: User, robot_id: int, *, only_less: bool = False) -> tuple[Permissions, User]:
        """(caller's permissions, the robot) the caller may act on; NotFound / Denied otherwise.

        ``only_less``: the action only takes access away (disable, delete), which the creator may do too.
        """
        perms = await self.permissions(caller)
        robot = None
        if isinstance(robot_id, int) and 0 < robot_id <= MAX_ROBOT_ID:
            robot = await self.index.get_robot(robot_id)
        if robot is None or not self._sees(caller, perms, robot):
            raise NotFound("robot account not found", {"id": robot_id})
        if not self.administers(perms, robot) and not (only_less and robot.created_by == caller.username):
            raise Denied("admin on every grant of this robot account is required", {"id": robot_id})
        return perms, robot

    # -- operations ----------------------------------------------------------------------------

    async def create(self, caller: User, body: dict[str, Any]) -> tuple[User, str]:
        """(the new robot's row, its secret in clear: shown once); BadRequest, Denied or Conflict."""
        name = check_name(body.get("name"))
        description = check_description(body.get("description", ""))
        if "grants" not in body:
            raise BadRequest("grants: required (a list of grants)")
        grants = check_grants(body.get("grants"))
        expires_at = self.expires_at(body["expires_in_days"] if "expires_in_days" in body else self._max_days())
        self._check_grantable(await self.permissions(caller), grants)
        username = ROBOT_PREFIX + name
        if await self.index.get_user_by_name(username) is not None:
            raise Conflict("a robot account with this name exists", {"name": username})
        secret = self._secret()
        row = await self.index.create_robot(
            username=username,
            password_hash=await self._hash(secret),
            description=description,
            grants=dump_grants(grants),
            expires_at=expires_at,
            created_by=caller.username,
            now=self.clock.seconds(),
        )
        if row is None:  # created by a concurrent request while we hashed
            raise Conflict("a robot account with this name exists", {"name": username})
        return row, secret

    def _max_days(self) -> int:
        return int(self.settings.get("robots.max_expiry_days"))

    async def visible(self, caller: User) -> list[User]:
        """The robots the caller may see, by id."""
        perms = await self.permissions(caller)
        return [r for r in await self.index.list_robots() if perms.server_admin or self._sees(caller, perms, r)]

    async def get(self, caller: User, robot_id: int) -> User:
        perms = await self.permissions(caller)
        robot = await self.index.get_robot(robot_id) if 0 < robot_id <= MAX_ROBOT_ID else None
        if robot is None or not (perms.server_admin or self._sees(caller, perms, robot)):
            raise NotFound("robot account not found", {"id": robot_id})
        return robot

    async def update(self, caller: User, robot_id: int, body: dict[str, Any]) -> tuple[User, dict[str, Any]]:
        """(the changed row, what changed: for the audit record).  Fields left out stay as they are."""
        for field in ("description", "grants", "disabled"):
            if field in body and body[field] is None:
                raise BadRequest(f"{field} may be left out but not null")
        changes: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        if "description" in body:
            changes["description"] = shown["description"] = check_description(body["description"])
        grants = None
        if "grants" in body:
            grants = check_grants(body["grants"])
            changes["grants"] = dump_grants(grants)
            shown["grants"] = [g.as_json() for g in grants]
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                raise BadRequest("disabled must be true or false")
            changes["disabled"] = int(body["disabled"])
            shown["disabled"] = body["disabled"]
        if "expires_in_days" in body:
            changes["expires_at"] = self.expires_at(body["expires_in_days"])
            shown["expires_in_days"] = body["expires_in_days"]
        only_less = set(changes) <= {"disabled"} and changes.get("disabled", 1) == 1
        perms, robot = await self._robot(caller, robot_id, only_less=only_less)
        if grants is not None:
            self._check_grantable(perms, grants)
        if not changes:
            return robot, shown
        row = await self.index.update_robot(robot.id, changes, self.clock.seconds())
        if row is None:
            raise NotFound("robot account not found", {"id": robot_id})
        return row, shown

    async def rotate(self, caller: User, robot_id: int) -> tuple[User, str]:
        """(the robot, its new secret): the old secret, and every token minted with it, stop working at once."""
        _, robot = await self._robot(caller, robot_id)
        secret = self._secret()
        hashed = await self._hash(secret)
        row = await self.index.update_robot(robot.id, {"password_hash": hashed}, self.clock.seconds())
        if row is None:
            raise NotFound("robot account not found", {"id": robot_id})
        return row, secret

    async def delete(self, caller: User, robot_id: int) -> User:
        """The deleted robot's row (for the audit record)."""
        _, robot = await self._robot(caller, robot_id, only_less=True)
        if not await self.index.delete_robot(robot.id):
            raise NotFound("robot account not found", {"id": robot_id})
        return robot
