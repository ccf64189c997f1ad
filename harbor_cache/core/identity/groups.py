"""Group rules: what a group may be called, hold and contain (``/api/v1/groups``).

A group gives every member its grants and, optionally, a role (a shorthand
for global grants, `auth.permissions.role_grants`); a member's permissions
are the union of their own and their groups' (`core.identity.principals`).

- names follow the username rules (1-128 printable characters, no
  whitespace, no ":") and are unique (409);
- ``role`` is null or one of `auth.ROLES`; ``grants`` is a list that
  `auth.permissions.parse_grants` accepts (400 naming the problem);
- ``members`` are usernames of people (not robots); an unknown one is a 400
  naming it.  Setting them replaces the local memberships only: those a
  directory (LDAP, OIDC) gave at login stay.

The front only parses and shapes; a body's fields left out keep their
values on PUT and take defaults on POST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harbor_cache.auth import ROLES, is_valid_role
from harbor_cache.core.identity.credentials import MAX_USERNAME_LENGTH
from harbor_cache.core.identity.users import ROBOT_PREFIX, check_grants
from harbor_cache.errors import BadRequest, Conflict, NotFound
from harbor_cache.index.groups import KEEP
from harbor_cache.index.rows import Group

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

MAX_DESCRIPTION_LENGTH = 1024
#: members one request may name (a 64 KiB body holds fewer names of any useful length anyway)
MAX_MEMBERS = 10_000
MAX_GROUP_ID = (1 << 63) - 1

#: a group as the index returns it: the row and its members' usernames
GroupRecord = tuple[Group, list[str]]


def check_name(name: Any) -> str:
    """A group name (the username rules), or BadRequest saying what is wrong."""
    if not isinstance(name, str) or not name:
        raise BadRequest("name must be a non-empty string")
    if len(name) > MAX_USERNAME_LENGTH:
        raise BadRequest(f"name longer than {MAX_USERNAME_LENGTH} characters")
    if ":" in name or any(c.isspace() or not c.isprintable() for c in name):
        raise BadRequest("name may not contain whitespace, control characters or ':'")
    if name.startswith(ROBOT_PREFIX):  # like usernames: robot$ names robot accounts (and the audit's actor kind)
        raise BadRequest(f"name may not start with {ROBOT_PREFIX!r} (robot accounts are named so)")
    return name


def check_description(description: Any) -> str:
    if not isinstance(description, str):
        raise BadRequest("description must be a string")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(f"description longer than {MAX_DESCRIPTION_LENGTH} characters")
    return description


def check_group_role(role: Any) -> str | None:
    if role is not None and not is_valid_role(role):
        raise BadRequest(f"role must be null or one of {', '.join(ROLES)}")
    return role


def check_members(members: Any) -> list[str]:
    """Usernames, each once, in the order given."""
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise BadRequest("members must be a list of usernames")
    if len(members) > MAX_MEMBERS:
        raise BadRequest(f"at most {MAX_MEMBERS} members")
    return list(dict.fromkeys(members))


class GroupService:
    """Create, change, list and delete groups; records are (`index.rows.Group`, member usernames)."""

    def __init__(self, index: Index, clock: IReactorTime) -> None:
        self.index = index
        self.clock = clock

    async def list(self) -> list[GroupRecord]:
        return await self.index.list_groups()

    async def get(self, group_id: int) -> GroupRecord:
        """The group; raises NotFound."""
        found = None
        if isinstance(group_id, int) and 0 < group_id <= MAX_GROUP_ID:
            found = await self.index.get_group(group_id)
        if found is None:
            raise NotFound("group not found", {"id": group_id})
        return found

    async def create(self, body: dict[str, Any]) -> GroupRecord:
        """BadRequest for bad fields or an unknown member, Conflict for a taken name."""
        name = check_name(body.get("name"))
        description = check_description(body.get("description", ""))
        role = check_group_role(body.get("role"))
        grants = check_grants(body.get("grants", []))
        members = check_members(body.get("members", []))
        status, result = await self.index.create_group(name, description, role, grants, members, self.clock.seconds())
        return self._outcome(status, result, name, None)

    async def update(self, group_id: int, body: dict[str, Any]) -> GroupRecord:
        """Change the fields given; NotFound, BadRequest, or Conflict for a name another group has."""
        for field in ("name", "description", "grants", "members"):
            if field in body and body[field] is None:
                raise BadRequest(f"{field} may be left out but not null")
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = check_name(body["name"])
        if "description" in body:
            changes["description"] = check_description(body["description"])
        changes["role"] = check_group_role(body["role"]) if "role" in body else KEEP
        if "grants" in body:
            changes["grants"] = check_grants(body["grants"])
        if "members" in body:
            changes["members"] = check_members(body["members"])
        await self.get(group_id)
        status, result = await self.index.update_group(group_id, self.clock.seconds(), **changes)
        return self._outcome(status, result, changes.get("name"), group_id)

    async def delete(self, group_id: int) -> GroupRecord:
        """The removed group; raises NotFound."""
        await self.get(group_id)
        gone = await self.index.delete_group(group_id)
        if gone is None:  # removed by a concurrent request
            raise NotFound("group not found", {"id": group_id})
        return gone

    @staticmethod
    def _outcome(status: str, result: Any, name: str | None, group_id: int | None) -> GroupRecord:
        if status == "taken":
            raise Conflict("group name already exists", {"name": name})
        if status == "unknown_user":
            raise BadRequest(f"members: no user named {result!r}", {"username": result})
        if status == "missing":
            raise NotFound("group not found", {"id": group_id})
        return result
