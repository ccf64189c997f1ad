"""Groups of users (tables ``groups`` and ``group_members``): their grants and roles apply to every member.

A membership has a source: "local" ones are what an admin set through the
API (`create_group` / `update_group` replace them), "ldap" and "oidc" ones
come from a directory at login and are left alone here.  Members are people
(``users.kind = 'user'``); robots hold only their own grants.
"""

from __future__ import annotations

from collections.abc import Sequence

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store, fetch_all, fetch_one
from harbor_cache.index.rows import Group

#: what `update_group` leaves as it is (``role`` may be set to None, so None cannot mean "keep")
KEEP: object = object()


class GroupsStore(Store):
    """Groups and who is in them."""

    async def groups_of_user(self, user_id: int) -> list[Group]:
        """The groups the user is a member of (local and directory memberships alike), by name."""

        def _txn(txn: Cursor) -> list[Group]:
            self._exec(
                txn,
                "SELECT g.* FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name",
                (user_id,),
            )
            return fetch_all(txn, Group)

        return await self._run("groups_of_user", _txn)

    def _members(self, txn: Cursor, group_id: int | None) -> dict[int, list[str]]:
        """Usernames of the members of one group (or of every group), by group id, sorted."""
        sql = "SELECT m.group_id, u.username FROM group_members m JOIN users u ON u.id = m.user_id"
        if group_id is None:
            self._exec(txn, sql + " ORDER BY u.username")
        else:
            self._exec(txn, sql + " WHERE m.group_id = ? ORDER BY u.username", (group_id,))
        out: dict[int, list[str]] = {}
        for gid, username in txn.fetchall():
            out.setdefault(gid, []).append(username)
        return out

    async def list_groups(self) -> list[tuple[Group, list[str]]]:
        """Every group by name, with its members' usernames."""

        def _txn(txn: Cursor) -> list[tuple[Group, list[str]]]:
            self._exec(txn, "SELECT * FROM groups ORDER BY name")
            groups = fetch_all(txn, Group)
            members = self._members(txn, None)
            return [(g, members.get(g.id, [])) for g in groups]

        return await self._run("list_groups", _txn)

    async def get_group(self, group_id: int) -> tuple[Group, list[str]] | None:
        """The group and its members' usernames, or None."""

        def _txn(txn: Cursor) -> tuple[Group, list[str]] | None:
            self._exec(txn, "SELECT * FROM groups WHERE id = ?", (group_id,))
            row = fetch_one(txn, Group)
            if row is None:
                return None
            return row, self._members(txn, group_id).get(group_id, [])

        return await self._run("get_group", _txn)

    def _user_ids(self, txn: Cursor, usernames: Sequence[str]) -> tuple[list[int], str | None]:
        """(ids of the named people, the first name that is no person's, or None)."""
        ids = []
        for name in usernames:
            self._exec(txn, "SELECT id FROM users WHERE username = ? AND kind = 'user'", (name,))
            found = txn.fetchone()
            if found is None:
                return [], name
            ids.append(found[0])
        return ids, None

    def _set_local_members(self, txn: Cursor, group_id: int, user_ids: list[int]) -> None:
        """Replace the group's local memberships; a directory membership of the same user stays as it is."""
        self._exec(txn, "DELETE FROM group_members WHERE group_id = ? AND source = 'local'", (group_id,))
        for uid in user_ids:
            self._exec(
                txn,
                "INSERT INTO group_members (group_id, user_id, source) VALUES (?, ?, 'local')"
                " ON CONFLICT (group_id, user_id) DO NOTHING",
                (group_id, uid),
            )

    async def create_group(
        self,
        name: str,
        description: str,
        role: str | None,
        grants: str,
        members: Sequence[str],
        now: float,
        source: str = "local",
    ) -> tuple[str, tuple[Group, list[str]] | str | None]:
        """Insert a group with local ``members`` (usernames), in one transaction.

        Returns ("ok", (row, members)), ("taken", None) when the name is in use,
        or ("unknown_user", username) (nothing is created then).
        """

        def _txn(txn: Cursor) -> tuple[str, tuple[Group, list[str]] | str | None]:
            ids, unknown = self._user_ids(txn, members)
            if unknown is not None:
                return "unknown_user", unknown
            self._exec(
                txn,
                """INSERT INTO groups (name, description, role, grants, source, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING""",
                (name, description, role, grants, source, now, now),
            )
            if txn.rowcount == 0:
                return "taken", None
            self._exec(txn, "SELECT * FROM groups WHERE name = ?", (name,))
            row = fetch_one(txn, Group)
            assert row is not None  # (inserted above, in this transaction)
            self._set_local_members(txn, row.id, ids)
            return "ok", (row, self._members(txn, row.id).get(row.id, []))

        return await self._run("create_group", _txn)

    async def update_group(
        self,
        group_id: int,
        now: float,
        *,
        name: str | None = None,
        description: str | None = None,
        role: object = KEEP,
        grants: str | None = None,
        members: Sequence[str] | None = None,
    ) -> tuple[str, tuple[Group, list[str]] | str | None]:
        """Change the given fields (None / `KEEP`: as it is); ``members`` replaces the local memberships.

        Returns ("ok", (row, members)), ("missing", None), ("taken", None) for a
        name in use by another group, or ("unknown_user", username); nothing
        changes unless "ok".
        """

        def _txn(txn: Cursor) -> tuple[str, tuple[Group, list[str]] | str | None]:
            self._exec(txn, "SELECT * FROM groups WHERE id = ?", (group_id,))
            if fetch_one(txn, Group) is None:
                return "missing", None
            if name is not None:
                self._exec(txn, "SELECT 1 FROM groups WHERE name = ? AND id <> ?", (name, group_id))
                if txn.fetchone() is not None:
                    return "taken", None
            ids: list[int] = []
            if members is not None:
                ids, unknown = self._user_ids(txn, members)
                if unknown is not None:
                    return "unknown_user", unknown
            sets, args = ["updated_at = ?"], list[object]([now])
            for column, value in (("name", name), ("description", description), ("grants", grants)):
                if value is not None:
                    sets.append(f"{column} = ?")
                    args.append(value)
            if role is not KEEP:
                sets.append("role = ?")
                args.append(role)
            self._exec(txn, f"UPDATE groups SET {', '.join(sets)} WHERE id = ?", (*args, group_id))
            if members is not None:
                self._set_local_members(txn, group_id, ids)
            self._exec(txn, "SELECT * FROM groups WHERE id = ?", (group_id,))
            row = fetch_one(txn, Group)
            assert row is not None  # (found above, in this transaction)
            return "ok", (row, self._members(txn, group_id).get(group_id, []))

        return await self._run("update_group", _txn)

    async def delete_group(self, group_id: int) -> tuple[Group, list[str]] | None:
        """Remove the group and every membership in it; the removed group, or None when there was none."""

        def _txn(txn: Cursor) -> tuple[Group, list[str]] | None:
            self._exec(txn, "SELECT * FROM groups WHERE id = ?", (group_id,))
            row = fetch_one(txn, Group)
            if row is None:
                return None
            members = self._members(txn, group_id).get(group_id, [])
            self._exec(txn, "DELETE FROM group_members WHERE group_id = ?", (group_id,))
            self._exec(txn, "DELETE FROM groups WHERE id = ?", (group_id,))
            return row, members

        return await self._run("delete_group", _txn)
